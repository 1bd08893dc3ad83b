package extproc

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// protoErr is why a message was out of sequence and ignored; its name is
// the reason label of reprise_extproc_protocol_errors_total.
type protoErr int

const (
	errNotObservability          protoErr = iota // observability_mode false: the stream is closed at once
	errEmptyMessage                              // no request/response part (flow control only, or unknown)
	errSecondRequestHeaders                      // request headers again
	errRequestBeforeHeaders                      // request body or trailers before the request headers
	errRequestAfterEnd                           // request body after the request's end
	errResponseBeforeRequest                     // response part before the request headers
	errSecondResponseHeaders                     // response headers again
	errResponseBodyBeforeHeaders                 // response body or trailers before the response headers
	errAfterResponseEnd                          // anything after the response's end
	numProtoErrors
)

var protoErrNames = [numProtoErrors]string{
	"not_observability_mode", "empty_message", "second_request_headers", "request_before_headers",
	"request_after_end", "response_before_request", "second_response_headers",
	"response_body_before_headers", "after_response_end",
}

// parseFailure is why a body was not parsed; its name is the reason label
// of reprise_extproc_parse_failures_total.
type parseFailure int

const (
	// failRequest: a whole request body of an OpenAI endpoint gave no
	// request (not JSON, or no model).
	failRequest parseFailure = iota
	// failEncoded: a body with a Content-Encoding (gzip...) is not decoded.
	failEncoded
	numParseFailures
)

var parseFailureNames = [numParseFailures]string{"request", "encoded"}

// logKind names a log line that many streams may produce at once; each
// kind is logged at most once per logEvery (limiter), and the counters hold
// the totals.
type logKind int

const (
	logAborted logKind = iota
	logOverloaded
	logProtocol
	logParse
	logNotObservability
	numLogKinds
)

// logEvery is the least time between two log lines of a kind.
const logEvery = time.Second

// limiter lets one event through per logEvery and counts the rest.
type limiter struct {
	next       atomic.Int64 // ns on the server's clock before which lines are suppressed
	suppressed atomic.Int64
}

// allow reports whether a line may be logged at now (ns since the
// server's origin) and how many were suppressed since the last one.
func (l *limiter) allow(now int64) (bool, int64) {
	next := l.next.Load()
	if now < next || !l.next.CompareAndSwap(next, now+int64(logEvery)) {
		l.suppressed.Add(1)
		return false, 0
	}
	return true, l.suppressed.Swap(0)
}

var (
	descStreams     = prometheus.NewDesc("reprise_extproc_streams_total", "ext_proc streams Envoy opened.", nil, nil)
	descOpen        = prometheus.NewDesc("reprise_extproc_streams_open", "ext_proc streams open now.", nil, nil)
	descMessages    = prometheus.NewDesc("reprise_extproc_messages_total", "ext_proc messages received.", nil, nil)
	descMsgDropped  = prometheus.NewDesc("reprise_extproc_messages_dropped_total", "ext_proc messages dropped because a stream's queue or the queue byte budget was full (the records say aborted, processor overloaded); Envoy's traffic was not affected.", nil, nil)
	descRecords     = prometheus.NewDesc("reprise_extproc_records_total", "Records handed to the capture writer.", nil, nil)
	descRecDropped  = prometheus.NewDesc("reprise_extproc_records_dropped_total", "Records the capture writer refused (queue full or closed).", nil, nil)
	descAborted     = prometheus.NewDesc("reprise_extproc_aborted_total", "Records of requests that did not end normally: the stream ended early, idled, was cut at shutdown, or lost messages.", nil, nil)
	descNoRecord    = prometheus.NewDesc("reprise_extproc_streams_without_request_total", "Streams that ended without request headers: nothing to record.", nil, nil)
	descProtoErrors = prometheus.NewDesc("reprise_extproc_protocol_errors_total", "ext_proc messages out of sequence, ignored, by reason.", []string{"reason"}, nil)
	descParseFail   = prometheus.NewDesc("reprise_extproc_parse_failures_total", "Bodies not parsed: request (a whole OpenAI request body that is not JSON or has no model), encoded (a Content-Encoding body).", []string{"reason"}, nil)
	descQueued      = prometheus.NewDesc("reprise_extproc_queued_bytes", "Bytes of ext_proc messages waiting for their streams' state machines.", nil, nil)
)

// Describe implements prometheus.Collector.
func (s *Server) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descStreams, descOpen, descMessages, descMsgDropped, descRecords, descRecDropped,
		descAborted, descNoRecord, descProtoErrors, descParseFail, descQueued} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: the counters, read at scrape
// time, so the streams' hot paths touch only atomics.
func (s *Server) Collect(ch chan<- prometheus.Metric) {
	st := s.Stats()
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	counter(descStreams, st.Streams)
	ch <- prometheus.MustNewConstMetric(descOpen, prometheus.GaugeValue, float64(st.Open))
	counter(descMessages, st.Messages)
	counter(descMsgDropped, st.MessagesDropped)
	counter(descRecords, st.Records)
	counter(descRecDropped, st.RecordsDropped)
	counter(descAborted, st.Aborted)
	counter(descNoRecord, st.NoRecord)
	for i := range s.protoErrs {
		counter(descProtoErrors, s.protoErrs[i].Load(), protoErrNames[i])
	}
	for i := range s.parseFails {
		counter(descParseFail, s.parseFails[i].Load(), parseFailureNames[i])
	}
	ch <- prometheus.MustNewConstMetric(descQueued, prometheus.GaugeValue, float64(st.QueuedBytes))
}
