package broker

import (
	"net/url"
	"strings"
)

// redactURL hides the password of every URL in a comma-separated list, so a URL
// with credentials can be logged.
func redactURL(list string) string {
	parts := strings.Split(list, ",")
	for i, p := range parts {
		u, err := url.Parse(strings.TrimSpace(p))
		if err != nil || u.User == nil {
			continue
		}
		parts[i] = u.Redacted()
		if _, hasPassword := u.User.Password(); !hasPassword {
			// A bare user part may be a token: hide it too.
			u.User = url.User("***")
			parts[i] = u.String()
		}
	}
	return strings.Join(parts, ",")
}
