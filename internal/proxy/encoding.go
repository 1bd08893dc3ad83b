package proxy

import (
	"bufio"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"
	"go.uber.org/zap"

	"github.com/reprise-llm/reprise/internal/capture"
)

// Bodies with a Content-Encoding (gzip, br, deflate, zstd, or a list of
// them) are forwarded exactly as received, in both directions; the proxy
// decodes only its own bounded copy, to parse model, tokens and usage.
// The decoded form is capped at Config.MaxBody (--max-parse-bytes), so a
// small compressed body that inflates to gigabytes (a zip bomb) costs at
// most that much memory and work.

// contentEncoding returns h's Content-Encoding in lower case, "" when the
// body is not encoded (absent or identity).
func contentEncoding(h http.Header) string {
	v := strings.ToLower(strings.TrimSpace(strings.Join(h.Values("Content-Encoding"), ",")))
	if v == "identity" {
		return ""
	}
	return v
}

// errUnsupportedEncoding names a coding the proxy cannot decode; the body
// still passes through, only its parsing is skipped.
var errUnsupportedEncoding = errors.New("unsupported content coding")

// decodeBounded decodes body, encoded with the Content-Encoding list enc
// (codings applied in the order listed, so undone from the last), and
// returns at most max decoded bytes and whether they are all of it. A
// truncated input (the tee kept only a prefix) decodes as far as it goes and
// is reported incomplete; an input that yields nothing is an error.
func decodeBounded(enc string, body []byte, max int) ([]byte, bool, error) {
	var r io.Reader = bytes.NewReader(body)
	codings := strings.Split(enc, ",")
	var closers []io.Closer
	defer func() {
		for _, c := range closers {
			_ = c.Close()
		}
	}()
	for i := len(codings) - 1; i >= 0; i-- {
		c := strings.TrimSpace(codings[i])
		switch c {
		case "", "identity":
		case "gzip", "x-gzip":
			zr, err := gzip.NewReader(r)
			if err != nil {
				return nil, false, fmt.Errorf("decoding %s body: %w", c, err)
			}
			closers = append(closers, zr)
			r = zr
		case "br":
			r = brotli.NewReader(r)
		case "deflate":
			// RFC 9110 §8.4.1.2: the zlib format. Some servers send raw
			// deflate; try that when the zlib header (RFC 1950 §2.2: CM 8,
			// header a multiple of 31) is missing.
			br := bufio.NewReader(r)
			if h, err := br.Peek(2); err == nil && h[0]&0x0f == 8 && (uint16(h[0])<<8|uint16(h[1]))%31 == 0 {
				zr, err := zlib.NewReader(br)
				if err != nil {
					return nil, false, fmt.Errorf("decoding %s body: %w", c, err)
				}
				closers = append(closers, zr)
				r = zr
				continue
			}
			fr := flate.NewReader(br)
			closers = append(closers, fr)
			r = fr
		case "zstd":
			zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(32<<20),
				zstd.WithDecoderMaxMemory(uint64(max)+(32<<20)))
			if err != nil {
				return nil, false, fmt.Errorf("decoding zstd body: %w", err)
			}
			defer zr.Close()
			r = zr
		default:
			return nil, false, fmt.Errorf("decoding body: %w %q", errUnsupportedEncoding, c)
		}
	}
	out, err := io.ReadAll(io.LimitReader(r, int64(max)+1))
	if len(out) > max {
		return out[:max], false, nil
	}
	if err != nil {
		if len(out) == 0 {
			return nil, false, fmt.Errorf("decoding %s body: %w", enc, err)
		}
		return out, false, nil
	}
	return out, true, nil
}

// encodedCopy keeps the first max bytes of an encoded response body as they
// arrive; feed decodes them for the tracker when the exchange ends. Events
// of an encoded event stream are therefore all timed at the last byte: a
// server that compresses SSE has given up per-event delivery anyway.
type encodedCopy struct {
	encoding string
	buf      []byte
	max      int
	last     time.Time // arrival of the latest bytes
}

func (p *Proxy) newEncodedCopy(enc string) *encodedCopy {
	return &encodedCopy{encoding: enc, max: p.cfg.MaxBody}
}

func (c *encodedCopy) write(now time.Time, b []byte) {
	c.last = now
	if room := c.max - len(c.buf); room > 0 {
		c.buf = append(c.buf, b[:min(len(b), room)]...)
	}
}

// feed hands the decoded copy to the tracker, once (it lets go of the copy).
func (c *encodedCopy) feed(ex *exchange, p *Proxy) {
	if len(c.buf) == 0 {
		return
	}
	dec, _, err := decodeBounded(c.encoding, c.buf, c.max)
	c.buf = nil
	if err != nil {
		p.log.Debug("response body not decoded for parsing", zap.String("request_id", ex.reqID), errField(err))
		return
	}
	ex.tr.ResponseData(c.last, dec)
}

// parseRequestBody hands a request body to the tracker for parsing:
// decoded first when enc names a content coding (bounded by max; the body
// is forwarded as received). complete says body is all of it. An error is
// a body that could not be decoded, left unparsed.
func parseRequestBody(tr *capture.Tracker, enc string, body []byte, complete bool, max int) error {
	if enc == "" {
		tr.RequestBody(body, complete)
		return nil
	}
	dec, decComplete, err := decodeBounded(enc, body, max)
	if err != nil {
		return err
	}
	tr.RequestBody(dec, complete && decComplete)
	return nil
}
