package job

// CheckID says what is wrong with id as a job id (1–128 of A-Z a-z 0-9 . _ : -), or
// returns nil. The worker uses it for ids that come from the Nats-Msg-Id header.
func CheckID(id string) error {
	inv := &InvalidError{}
	if id == "" {
		inv.add("id", "must not be empty")
	} else {
		validID(inv, id)
	}
	if len(inv.Problems) == 0 {
		return nil
	}
	return inv.Problems[0]
}
