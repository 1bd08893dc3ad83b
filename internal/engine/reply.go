package engine

import "github.com/reprise-llm/reprise/internal/workload"

// ReplyObserver is implemented by a BodyBuilder that needs the server's
// replies: multi-turn workloads whose later turns resend the conversation
// so far (workload.Request.History), and agentic conversations whose later
// calls quote an earlier call's reply (workload.GraphNode.Reply). For a
// request KeepsReply accepts, the client keeps the response's content text
// and calls ObserveReply with it when the response ends — before the
// requests waiting for it are released, so that their bodies, built when
// they are sent (never ahead of time: NeedsReplies), hold the reply. text
// is empty when the request failed or produced no content. Other
// requests' content is never kept.
type ReplyObserver interface {
	ObserveReply(req *workload.Request, text string)
	// KeepsReply reports whether ObserveReply wants req's reply.
	KeepsReply(req *workload.Request) bool
	// NeedsReplies reports whether req's body depends on earlier replies:
	// it is then built when req is sent.
	NeedsReplies(req *workload.Request) bool
}
