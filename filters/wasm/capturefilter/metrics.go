package capturefilter

import "github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm"

// Metric names. Envoy keeps one value per name for the whole process, so
// every worker's VM adds to the same series; it files them in its custom
// stats namespace ("wasmcustom").
const (
	MetricRequests         = "reprise_wasm_requests_total"                   // requests the filter saw
	MetricUnsampled        = "reprise_wasm_requests_unsampled_total"         // not captured: outside the sample
	MetricQueued           = "reprise_wasm_records_queued_total"             // records queued for the collector
	MetricSent             = "reprise_wasm_records_sent_total"               // records the collector wrote
	MetricDroppedQueueFull = "reprise_wasm_records_dropped_queue_full_total" // refused by the full queue
	MetricDroppedCollector = "reprise_wasm_records_dropped_collector_total"  // in batches the collector did not take (down, timeout, error)
	MetricRejected         = "reprise_wasm_records_rejected_total"           // lines the collector refused (its log says why)
	MetricCollectorFull    = "reprise_wasm_records_collector_full_total"     // valid records the collector's full capture queue dropped
	MetricUnhashed         = "reprise_wasm_records_unhashed_total"           // sent without hash ids or session: no hash key yet
	MetricNotParsed        = "reprise_wasm_bodies_not_parsed_total"          // encoded (Content-Encoding) bodies: timings only
	MetricBatchesFailed    = "reprise_wasm_batches_failed_total"             // batches the collector did not take
	MetricPanics           = "reprise_wasm_panics_total"                     // recovered panics: that request is not captured
	MetricQueueLength      = "reprise_wasm_queue_records"                    // gauge: records waiting to be sent
)

// metrics are the filter's Envoy stats.
type metrics struct {
	requests, unsampled, queued, sent, droppedQueueFull, droppedCollector, rejected, collectorFull,
	unhashed, notParsed, batchesFailed, panics proxywasm.MetricCounter
	queueLength proxywasm.MetricGauge
}

func defineMetrics() metrics {
	c := proxywasm.DefineCounterMetric
	return metrics{
		requests: c(MetricRequests), unsampled: c(MetricUnsampled), queued: c(MetricQueued), sent: c(MetricSent),
		droppedQueueFull: c(MetricDroppedQueueFull), droppedCollector: c(MetricDroppedCollector),
		rejected: c(MetricRejected), collectorFull: c(MetricCollectorFull), unhashed: c(MetricUnhashed),
		notParsed: c(MetricNotParsed), batchesFailed: c(MetricBatchesFailed), panics: c(MetricPanics),
		queueLength: proxywasm.DefineGaugeMetric(MetricQueueLength),
	}
}
