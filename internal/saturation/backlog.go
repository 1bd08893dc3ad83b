package saturation

// The growth test must hold at every evaluation for the last quarter of
// the benchmark (and at least 5 s): a stable queue near capacity wanders
// and passes it now and then, a growing one keeps passing it.
const (
	persistFraction = 0.25
	persistMin      = 5.0 // seconds
)

// backlogView is what the backlog signal saw at its last evaluation.
type backlogView struct {
	thirds             [3]float64 // mean in flight over each third of the span
	offered, completed float64    // req/s over the second half of the benchmark
	evaluated          bool
}

// backlog evaluates the second signal over the progress samples.
//
// A stable server holds requests in flight around a level (Little's law:
// arrival rate × latency); an over-saturated one accumulates them for as
// long as the benchmark lasts — linearly above capacity, like √t exactly
// at capacity, where the queue is a reflected random walk. The signal
// therefore looks at the whole benchmark rather than a recent window: it
// drops the first quarter (the ramp from empty), splits the rest into
// thirds by time and fires backlog_growth when their mean in-flight counts
// rise in order and the last exceeds the first by BacklogGrowth× and by
// BacklogMin requests. rate_deficit fires when, over the second half of the
// benchmark, requests finished at less than (1 − RateDeficit) of the
// offered rate (the schedule's, or the send rate) while in flight rose.
func (d *Detector) backlog() (growth, deficit bool) {
	if d.now < d.cfg.MinSeconds || len(d.samples) < 6 {
		return false, false
	}
	from := d.now / 4
	span := d.now - from
	var sum [3]float64
	var n [3]int
	for _, s := range d.samples {
		if s.t < from {
			continue
		}
		i := min(int((s.t-from)/span*3), 2)
		sum[i] += float64(s.sent - s.done)
		n[i]++
	}
	if n[0] == 0 || n[1] == 0 || n[2] == 0 {
		return false, false
	}
	var v backlogView
	for i := range v.thirds {
		v.thirds[i] = sum[i] / float64(n[i])
	}
	rise := v.thirds[2] - v.thirds[0]
	holds := v.thirds[0] < v.thirds[1] && v.thirds[1] < v.thirds[2] &&
		v.thirds[2] >= d.cfg.BacklogGrowth*v.thirds[0] && rise >= d.cfg.BacklogMin
	switch {
	case !holds:
		d.growthSince = -1
	case d.growthSince < 0:
		d.growthSince = d.now
	}
	growth = holds && d.now-d.growthSince >= max(persistMin, d.now*persistFraction)

	// Second half: the first sample at or after now/2 against the last.
	last := d.samples[len(d.samples)-1]
	var mid sample
	for _, s := range d.samples {
		if s.t >= d.now/2 {
			mid = s
			break
		}
	}
	if dt := last.t - mid.t; dt > 0 {
		v.completed = float64(last.done-mid.done) / dt
		v.offered = d.offered
		if v.offered <= 0 {
			v.offered = float64(last.sent-mid.sent) / dt
		}
		deficit = v.completed < (1-d.cfg.RateDeficit)*v.offered && rise >= d.cfg.BacklogMin
	}
	v.evaluated = true
	d.last = v
	return growth, deficit
}
