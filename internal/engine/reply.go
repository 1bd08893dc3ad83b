package engine

import "github.com/reprise-llm/reprise/internal/workload"

// ReplyObserver is implemented by a BodyBuilder that needs the server's
// replies: multi-turn workloads whose later turns resend the conversation
// so far (workload.Request.History). For such a request the client keeps
// the response's content text and calls ObserveReply with it when the
// response ends — before the session's next turn is released, so that its
// body, built when it is sent (never ahead of time), holds the reply.
// text is empty when the request failed or produced no content. Other
// requests' content is never kept.
type ReplyObserver interface {
	ObserveReply(req *workload.Request, text string)
}
