package stats

import (
	"strings"
	"sync/atomic"
	"time"

	"github.com/reprise-llm/reprise/internal/engine"
)

// CDF keys in Metrics.CDF: the metrics whose full distribution the report
// draws.
const (
	CDFTimeToFirstToken  = "time_to_first_token_ms"
	CDFInterTokenLatency = "inter_token_latency_ms"
	CDFInterChunkLatency = "inter_chunk_latency_ms"
	CDFRequestLatency    = "request_latency_ms"
	// CDFInterTokenLatencyTokenWeighted, CDFTimePerOutputTokenTokenWeighted
	// and CDFInFlight are kept for the GuideLLM export, whose
	// percentiles between p0.1 and p75 they give exactly.
	CDFInterTokenLatencyTokenWeighted  = "inter_token_latency_token_weighted_ms"
	CDFTimePerOutputTokenTokenWeighted = "time_per_output_token_token_weighted_ms"
	CDFInFlight                        = "requests_in_flight"
)

// Recorder accumulates Results into the figures of Metrics. Each worker can
// own one and the owner Merges them at the end; it is not safe for
// concurrent use. Its memory is a few sparse HDR histograms, 16 bytes per
// request (for concurrency), 16 more for an open loop (Options.OpenLoop:
// the arrival shape) and one small counter set per time bucket.
type Recorder struct {
	opts Options

	ttft, ttftIntended, itl, icl, ntpot, tpot *Histogram
	e2e, e2eIntended, ttfb, lag               *Histogram
	queueWait, clientLag                      *Histogram
	itlTok, tpotTok, ntpotTok                 *Histogram // token-weighted: one entry per request, weighted by its tokens
	totalTok, events, perChunk, perChunkLater *Histogram // see recordCounts
	excluded                                  ExcludedCounts
	prompt, output, cached                    *Histogram
	promptMismatch, outputMismatch            *mismatch

	counts              RequestCounts
	inTok, outTok       int64
	fromUsage, sloMet   int64
	usagePrompt         int64 // prompt tokens of successful requests with usage (Metrics.CachedTokenShare)
	usageCached         int64 // their cached tokens
	cachedReqs, retried int64 // Metrics.CachedTokenRequests, Metrics.RetriedRequests
	spans               []span
	arrivals            []arrival // Options.OpenLoop only
	haveTimes           bool
	minIntended, maxInt time.Duration
	minSent, maxSent    time.Duration
	buckets             map[int64]*bucketAcc // keyed by floor(t / BucketWidth)
	conversations       map[string]*convAcc  // conversation.go
	turnKinds           map[string]*Histogram
}

// span is one request's time in flight, ns offsets from the run origin.
type span struct{ sent, end time.Duration }

// bucketAcc holds the additive per-bucket counters of the time series.
type bucketAcc struct {
	started, completed, errored int64
	outTokens                   float64
	ttftSumMs                   float64
	ttftN                       int64
}

// NewRecorder returns an empty Recorder. Recorders that will be merged must
// share the same Options.
func NewRecorder(opts Options) *Recorder {
	return &Recorder{
		opts: opts.withDefaults(),
		ttft: NewLatencyHistogram(), ttftIntended: NewLatencyHistogram(),
		itl: NewLatencyHistogram(), icl: NewLatencyHistogram(),
		ntpot: NewLatencyHistogram(), tpot: NewLatencyHistogram(),
		e2e: NewLatencyHistogram(), e2eIntended: NewLatencyHistogram(),
		ttfb: NewLatencyHistogram(), lag: NewLatencyHistogram(),
		queueWait: NewLatencyHistogram(), clientLag: NewLatencyHistogram(),
		itlTok: NewLatencyHistogram(), tpotTok: NewLatencyHistogram(), ntpotTok: NewLatencyHistogram(),
		totalTok: NewCountHistogram(), events: NewCountHistogram(),
		perChunk: NewFractionHistogram(), perChunkLater: NewFractionHistogram(),
		prompt: NewCountHistogram(), output: NewCountHistogram(), cached: NewCountHistogram(),
		promptMismatch: newMismatch(), outputMismatch: newMismatch(),
		buckets: map[int64]*bucketAcc{}, conversations: map[string]*convAcc{}, turnKinds: map[string]*Histogram{},
	}
}

// metricHistograms lists r's own metrics' histograms in a fixed order.
func (r *Recorder) metricHistograms() []*Histogram {
	return []*Histogram{r.ttft, r.ttftIntended, r.itl, r.icl, r.ntpot, r.tpot, r.e2e, r.e2eIntended,
		r.ttfb, r.lag, r.queueWait, r.clientLag, r.prompt, r.output, r.cached,
		r.itlTok, r.tpotTok, r.ntpotTok, r.totalTok, r.events, r.perChunk, r.perChunkLater}
}

// histograms lists all of r's histograms, the mismatches' included.
func (r *Recorder) histograms() []*Histogram {
	return append(r.metricHistograms(), r.promptMismatch.abs, r.outputMismatch.abs)
}

// shareExactBudgets makes the recorders' histograms of each metric share
// one ExactLimit budget of exact values (recorders that will be merged).
func shareExactBudgets(recs []*Recorder) {
	if len(recs) == 0 {
		return
	}
	budgets := make([]atomic.Int64, len(recs[0].histograms()))
	for _, r := range recs {
		for i, h := range r.histograms() {
			h.budget = &budgets[i]
		}
	}
}

// Summarize computes the metrics of one benchmark from its results.
func Summarize(results []engine.Result, opts Options) Metrics {
	rec := NewRecorder(opts)
	for i := range results {
		rec.Record(&results[i])
	}
	return rec.Metrics()
}

// IsCancelled reports whether a failed request was ended by the client side
// rather than by the server: the run's drain deadline or a client that went
// away (the engine reports context cancellation as "context canceled"; the
// proxy records an abandoned stream as "aborted"). A timeout ("context
// deadline exceeded", net/http's "request canceled (Client.Timeout
// exceeded …)") is the server's failure and counts as an error.
func IsCancelled(r *engine.Result) bool {
	if r.OK() || r.Err == "" {
		return false
	}
	e := strings.ToLower(r.Err)
	if strings.Contains(e, "timeout") || strings.Contains(e, "deadline") {
		return false
	}
	return strings.Contains(e, "cancel") || e == "aborted"
}

func (rec *Recorder) bucket(t time.Duration) *bucketAcc {
	k := floorDiv(t, rec.opts.BucketWidth)
	b := rec.buckets[k]
	if b == nil {
		b = &bucketAcc{}
		rec.buckets[k] = b
	}
	return b
}

// Record adds one request's observation. A request sent in the warmup or
// cooldown (r.Phase) is only counted in Metrics.Excluded.
func (rec *Recorder) Record(r *engine.Result) {
	switch r.Phase {
	case engine.PhaseWarmup:
		rec.excluded.Warmup++
		return
	case engine.PhaseCooldown:
		rec.excluded.Cooldown++
		return
	}
	rec.counts.Total++
	rec.recordConversation(r)
	sent, end := r.Sent, max(r.End, r.Sent)
	rec.lag.RecordDuration(sent - r.Intended)
	rec.clientLag.RecordDuration(sent - r.Intended - r.QueueWait - r.OrderWait)
	if r.QueueWait > 0 {
		rec.queueWait.RecordDuration(r.QueueWait)
	}
	if !rec.haveTimes {
		rec.haveTimes = true
		rec.minIntended, rec.maxInt, rec.minSent, rec.maxSent = r.Intended, r.Intended, sent, sent
	} else {
		rec.minIntended, rec.maxInt = min(rec.minIntended, r.Intended), max(rec.maxInt, r.Intended)
		rec.minSent, rec.maxSent = min(rec.minSent, sent), max(rec.maxSent, sent)
	}
	rec.spans = append(rec.spans, span{sent, end})
	if rec.opts.OpenLoop { // the client's send time: intended + client lag
		rec.arrivals = append(rec.arrivals, arrival{r.Intended, sent - r.QueueWait - r.OrderWait})
	}
	rec.bucket(sent).started++
	done := rec.bucket(end)
	done.completed++
	if r.Retries > 0 {
		rec.retried++
	}

	ok := r.OK()
	switch {
	case ok:
		rec.counts.Successful++
	case IsCancelled(r):
		rec.counts.Cancelled++
		return
	default:
		rec.counts.Errored++
		done.errored++
		return
	}

	e2e := end - sent
	rec.e2e.RecordDuration(e2e)
	rec.e2eIntended.RecordDuration(end - r.Intended)
	if r.FirstByte > 0 {
		rec.ttfb.RecordDuration(r.FirstByte - sent)
	}
	rec.prompt.Record(float64(r.PromptTokens))
	rec.output.Record(float64(r.OutputTokens))
	rec.cached.Record(float64(r.CachedTokens))
	rec.inTok += int64(max(r.PromptTokens, 0))
	rec.outTok += int64(max(r.OutputTokens, 0))
	if r.TokensFromUsage {
		rec.fromUsage++
		rec.usagePrompt += int64(max(r.PromptTokens, 0))
		if c := int64(max(r.CachedTokens, 0)); c > 0 {
			rec.usageCached += c
			rec.cachedReqs++
		}
	}
	rec.recordMismatch(r)
	rec.recordCounts(r)

	hasFirst := r.FirstToken > 0
	first, last := r.FirstToken, max(r.LastToken, r.FirstToken)
	var itl time.Duration
	haveITL := false
	if hasFirst {
		ttft := first - sent
		rec.ttft.RecordDuration(ttft)
		rec.ttftIntended.RecordDuration(first - r.Intended)
		b := rec.bucket(sent)
		b.ttftSumMs += float64(max(ttft, 0)) / float64(time.Millisecond)
		b.ttftN++
	}
	// Each per-token metric is recorded twice: once per request, and once
	// weighted by the request's tokens (n for a figure per output token,
	// n − 1 for a gap between tokens), GuideLLM's weighting.
	if n := r.OutputTokens; n >= 1 {
		ntpot := e2e / time.Duration(n)
		rec.ntpot.RecordDuration(ntpot)
		rec.ntpotTok.RecordDurationWeighted(ntpot, int64(n))
		if hasFirst {
			tpot := (last - sent) / time.Duration(n)
			rec.tpot.RecordDuration(tpot)
			rec.tpotTok.RecordDurationWeighted(tpot, int64(n))
		}
		if hasFirst && r.Stream && n >= 2 {
			itl, haveITL = (last-first)/time.Duration(n-1), true
			rec.itl.RecordDuration(itl)
			rec.itlTok.RecordDurationWeighted(itl, int64(n-1))
		}
	}
	if r.Stream {
		for i := 1; i < len(r.Chunks); i++ {
			rec.icl.RecordDuration(r.Chunks[i] - r.Chunks[i-1])
		}
	}
	rec.spreadTokens(r, end)
	if s := rec.opts.SLO; s != nil && meetsSLO(s, r, hasFirst, haveITL, itl) {
		rec.sloMet++
	}
}

// spreadTokens attributes a successful request's output tokens to the
// buckets where they arrived: per content event, in proportion to its
// token count, scaled so they add up to OutputTokens; all at the end when
// there were no events (a non-streamed response).
func (rec *Recorder) spreadTokens(r *engine.Result, end time.Duration) {
	total := float64(max(r.OutputTokens, 0))
	if total == 0 {
		return
	}
	var weights float64
	for i := range r.Chunks {
		weights += chunkWeight(r, i)
	}
	if weights == 0 {
		rec.bucket(end).outTokens += total
		return
	}
	for i, t := range r.Chunks {
		rec.bucket(t).outTokens += total * chunkWeight(r, i) / weights
	}
}

func chunkWeight(r *engine.Result, i int) float64 {
	if i < len(r.ChunkTokens) {
		return float64(max(r.ChunkTokens[i], 0))
	}
	return 1
}

// meetsSLO reports whether a successful request met every set threshold.
// A TTFT threshold needs a first token; an ITL threshold is vacuously met by
// requests where inter_token_latency is undefined (non-streamed, or fewer
// than two output tokens), a TPOT threshold by requests with no output.
func meetsSLO(s *SLO, r *engine.Result, hasFirst, haveITL bool, itl time.Duration) bool {
	from := r.Sent
	if s.FromIntended {
		from = r.Intended
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	if s.TTFTMs > 0 && (!hasFirst || ms(r.FirstToken-from) > s.TTFTMs) {
		return false
	}
	if s.ITLMs > 0 && haveITL && ms(itl) > s.ITLMs {
		return false
	}
	if s.E2EMs > 0 && ms(max(r.End, r.Sent)-from) > s.E2EMs {
		return false
	}
	if n := r.OutputTokens; s.TPOTMs > 0 && hasFirst && n >= 1 && ms((max(r.LastToken, r.FirstToken)-from)/time.Duration(n)) > s.TPOTMs {
		return false
	}
	return true
}

// Merge adds everything o recorded. o must have been made with the same
// Options; it is not modified.
func (rec *Recorder) Merge(o *Recorder) {
	theirs := o.metricHistograms()
	for i, h := range rec.metricHistograms() {
		h.Merge(theirs[i])
	}
	rec.mergeConversations(o)
	rec.counts.Total += o.counts.Total
	rec.counts.Successful += o.counts.Successful
	rec.counts.Errored += o.counts.Errored
	rec.counts.Cancelled += o.counts.Cancelled
	rec.excluded.Warmup += o.excluded.Warmup
	rec.excluded.Cooldown += o.excluded.Cooldown
	rec.inTok += o.inTok
	rec.outTok += o.outTok
	rec.fromUsage += o.fromUsage
	rec.usagePrompt += o.usagePrompt
	rec.usageCached += o.usageCached
	rec.cachedReqs += o.cachedReqs
	rec.retried += o.retried
	rec.promptMismatch.merge(o.promptMismatch)
	rec.outputMismatch.merge(o.outputMismatch)
	rec.sloMet += o.sloMet
	rec.spans = append(rec.spans, o.spans...)
	rec.arrivals = append(rec.arrivals, o.arrivals...)
	if o.haveTimes {
		if !rec.haveTimes {
			rec.haveTimes = true
			rec.minIntended, rec.maxInt, rec.minSent, rec.maxSent = o.minIntended, o.maxInt, o.minSent, o.maxSent
		} else {
			rec.minIntended, rec.maxInt = min(rec.minIntended, o.minIntended), max(rec.maxInt, o.maxInt)
			rec.minSent, rec.maxSent = min(rec.minSent, o.minSent), max(rec.maxSent, o.maxSent)
		}
	}
	for k, ob := range o.buckets {
		b := rec.buckets[k]
		if b == nil {
			b = &bucketAcc{}
			rec.buckets[k] = b
		}
		b.started += ob.started
		b.completed += ob.completed
		b.errored += ob.errored
		b.outTokens += ob.outTokens
		b.ttftSumMs += ob.ttftSumMs
		b.ttftN += ob.ttftN
	}
}

// Metrics computes the summary of everything recorded so far.
func (rec *Recorder) Metrics() Metrics {
	m := Metrics{
		Requests:                     rec.counts,
		ErrorRate:                    ratio(float64(rec.counts.Errored), float64(rec.counts.Successful+rec.counts.Errored)),
		InputTokensTotal:             rec.inTok,
		OutputTokensTotal:            rec.outTok,
		TimeToFirstToken:             rec.ttft.Distribution(),
		TimeToFirstTokenFromIntended: rec.ttftIntended.Distribution(),
		InterTokenLatency:            rec.itl.Distribution(),
		InterChunkLatency:            rec.icl.Distribution(),
		NormalizedTimePerOutputToken: rec.ntpot.Distribution(),
		TimePerOutputToken:           rec.tpot.Distribution(),

		InterTokenLatencyTokenWeighted:            rec.itlTok.Distribution(),
		TimePerOutputTokenTokenWeighted:           rec.tpotTok.Distribution(),
		NormalizedTimePerOutputTokenTokenWeighted: rec.ntpotTok.Distribution(),
		TotalTokens:                    rec.totalTok.Distribution(),
		StreamEvents:                   rec.events.Distribution(),
		OutputTokensPerChunk:           rec.perChunk.Distribution(),
		OutputTokensPerChunkAfterFirst: rec.perChunkLater.Distribution(),
		RequestLatency:                 rec.e2e.Distribution(),
		RequestLatencyFromIntended:     rec.e2eIntended.Distribution(),
		PromptTokens:                   rec.prompt.Distribution(),
		OutputTokens:                   rec.output.Distribution(),
		CachedTokens:                   rec.cached.Distribution(),
		TimeToFirstByte:                rec.ttfb.Distribution(),
		SendLag:                        rec.lag.Distribution(),
		QueueWait:                      rec.queueWait.Distribution(),
		ClientLag:                      rec.clientLag.Distribution(),
		LagThresholdMs:                 float64(rec.opts.LagThreshold) / float64(time.Millisecond),
		Excluded:                       rec.excluded,
		RequestedRate:                  rec.opts.RequestedRate,
		DroppedRequests:                rec.opts.Dropped,
		TokensFromUsageFraction:        ratio(float64(rec.fromUsage), float64(rec.counts.Successful)),
		CachedTokenRequests:            rec.cachedReqs,
		RetriedRequests:                rec.retried,
		PromptTokenMismatch:            rec.promptMismatch.result(),
		OutputTokenMismatch:            rec.outputMismatch.result(),
		CDF: map[string]CDF{
			CDFTimeToFirstToken:  rec.ttft.CDF(),
			CDFInterTokenLatency: rec.itl.CDF(),
			CDFInterChunkLatency: rec.icl.CDF(),
			CDFRequestLatency:    rec.e2e.CDF(),

			CDFInterTokenLatencyTokenWeighted:  rec.itlTok.CDF(),
			CDFTimePerOutputTokenTokenWeighted: rec.tpotTok.CDF(),
			CDFInFlight:                        {Q: []float64{}, V: []float64{}},
		},
		Series: []Bucket{},
	}
	if rec.usageCached > 0 {
		m.CachedTokenShare = ratio(float64(rec.usageCached), float64(rec.usagePrompt))
	}
	if rec.opts.OpenLoop {
		m.ArrivalShape = arrivalShape(rec.arrivals)
	}
	m.DegradedBy = degradedBy(&m)
	m.Degraded = len(m.DegradedBy) > 0
	if rec.haveTimes && rec.counts.Total >= 2 {
		n := float64(rec.counts.Total - 1)
		m.ScheduledRate = ratio(n, (rec.maxInt - rec.minIntended).Seconds())
		m.AchievedRate = ratio(n, (rec.maxSent - rec.minSent).Seconds())
	}
	if len(rec.spans) == 0 {
		return m
	}
	start, end := rec.spans[0].sent, rec.spans[0].end
	var busy time.Duration
	for _, s := range rec.spans {
		start, end = min(start, s.sent), max(end, s.end)
		busy += s.end - s.sent
	}
	w := (end - start).Seconds()
	m.WindowS = w
	m.RequestsPerSecond = ratio(float64(rec.counts.Successful), w)
	m.InputTokensPerSecond = ratio(float64(rec.inTok), w)
	m.OutputTokensPerSecond = ratio(float64(rec.outTok), w)
	m.TotalTokensPerSecond = ratio(float64(rec.inTok+rec.outTok), w)
	m.ConcurrencyMean = ratio(busy.Seconds(), w)
	if s := rec.opts.SLO; s != nil {
		m.Goodput = &Goodput{
			SLO: *s, Met: rec.sloMet,
			Attainment:        ratio(float64(rec.sloMet), float64(rec.counts.Successful+rec.counts.Errored+rec.counts.Cancelled)), // a failed or drain-cancelled request missed it, as in slo.Evaluate
			RequestsPerSecond: ratio(float64(rec.sloMet), w),
		}
	}
	var levels map[int64]time.Duration
	m.Series, m.SeriesBucketS, m.ConcurrencyMax, levels = rec.series(start, end)
	m.InFlight, m.CDF[CDFInFlight] = inFlightDistribution(levels, int64(len(rec.spans)))
	rec.conversationMetrics(&m)
	return m
}

// floorDiv is ⌊a/b⌋ for b > 0, also for negative a.
func floorDiv(a, b time.Duration) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return int64(q)
}
