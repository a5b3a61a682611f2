package dispatcher

// Result is the gateway's answer to an accepted submission.
type Result struct {
	// MessageID is the gateway's id for the message: a UUID under REST v2, a
	// decimal integer under REST v1. Never empty.
	MessageID string
	// Status is the status the gateway gave, normally "accepted". REST v1
	// answers with the id alone: RESTv1 sets "accepted".
	Status string
	// Detail is the gateway's detail, normally the destination. REST v1 gives
	// none: RESTv1 sets the job's destination.
	Detail string
}

// Message is a submitted message as the gateway returns it: GET /messages?id=
// (REST v2) or GET /messages/{id} (REST v1).
type Message struct {
	// ID is the gateway's id: a UUID (REST v2) or a decimal integer (REST v1).
	ID          string `json:"id"`
	Source      string `json:"source"`
	Destination string `json:"destination"`
	Content     string `json:"content"`
	// Status is the message's status. REST v1 documents no status in this
	// answer: under v1 it is empty unless the gateway sends one.
	Status    string `json:"status"`
	Reference string `json:"reference"`
}
