package ingest

import "github.com/prometheus/client_golang/prometheus"

// rejectReason says why a line was refused (the reason label).
type rejectReason int

const (
	rejectJSON    rejectReason = iota // not a JSON record
	rejectTooLong                     // over MaxLineBytes
	rejectInvalid                     // a required member missing or out of range
	rejectClock                       // wall time outside MaxPast/MaxFuture
	numRejectReasons
)

var rejectNames = [numRejectReasons]string{"json", "too_long", "invalid", "clock"}

// stripReason says why a record lost fields (the reason label).
type stripReason int

const (
	stripContent stripReason = iota // more content than the capture's mode allows
	stripKey                        // hash chain and session computed with another key
	stripBlock                      // hash chain of another block size
	numStripReasons
)

var stripNames = [numStripReasons]string{"content", "key", "block"}

var (
	descBatches  = prometheus.NewDesc("reprise_ingest_batches_total", "Record batches received on the ingest listener.", nil, nil)
	descRefused  = prometheus.NewDesc("reprise_ingest_batches_refused_total", "Batches not read whole: too large, or not decodable.", nil, nil)
	descReceived = prometheus.NewDesc("reprise_ingest_records_received_total", "Record lines read from batches.", nil, nil)
	descWritten  = prometheus.NewDesc("reprise_ingest_records_written_total", "Ingested records handed to the capture writer.", nil, nil)
	descRejected = prometheus.NewDesc("reprise_ingest_records_rejected_total", "Record lines refused, by reason (json, too_long, invalid, clock).", []string{"reason"}, nil)
	descDropped  = prometheus.NewDesc("reprise_ingest_records_dropped_total", "Valid ingested records the capture writer's full queue refused.", nil, nil)
	descStripped = prometheus.NewDesc("reprise_ingest_records_stripped_total", "Ingested records that lost fields, by reason (content: beyond the capture's content mode; key: hashed with another key; block: another block size).", []string{"reason"}, nil)
)

// Describe implements prometheus.Collector.
func (h *Handler) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descBatches, descRefused, descReceived, descWritten, descRejected, descDropped, descStripped} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: the counters, read at scrape
// time, so that a batch touches only atomics.
func (h *Handler) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	counter(descBatches, h.batches.Load())
	counter(descRefused, h.refused.Load())
	counter(descReceived, h.received.Load())
	counter(descWritten, h.written.Load())
	counter(descDropped, h.dropped.Load())
	for i, name := range rejectNames {
		counter(descRejected, h.rejected[i].Load(), name)
	}
	for i, name := range stripNames {
		counter(descStripped, h.stripped[i].Load(), name)
	}
}

var _ prometheus.Collector = (*Handler)(nil)
