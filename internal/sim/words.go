package sim

// words are the simulator's output tokens, written for this project.
var words = []string{" the", " model", " answers", " with", " a", " short", " reply", " about", " data", " and",
	" time", " of", " each", " request", " in", " order", " to", " show", " how", " tokens", " arrive", " one",
	" by", " from", " server", " over", " stream", " while", " batch", " grows", " so", " latency", " rises",
	" under", " load", " until", " queue", " fills", " then", " waits", " for", " slot", " free", " again"}
