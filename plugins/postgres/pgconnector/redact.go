package pgconnector

import (
	"net/url"
	"regexp"
	"strings"
)

// minBarePassword is the shortest password replaced wherever it appears in a
// message. Shorter ones are replaced only inside URL-like text
// (":password@", "password=..."), so that a one-letter password does not
// garble every message.
const minBarePassword = 4

// userinfoRE finds the password of "scheme://user:password@" in any text.
var userinfoRE = regexp.MustCompile(`(://[^:/@\s]*:)[^@\s]*@`)

// passwordParamRE finds password=... in a query string or a key=value text.
var passwordParamRE = regexp.MustCompile(`(?i)(password=)[^&\s]*`)

// redactedURL returns the URL with its password replaced by "xxxxx" (and a
// password query parameter removed), fit for messages and logs.
func redactedURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<invalid url>"
	}
	if q := u.Query(); q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

// redactURLText removes every trace of raw's secrets from msg: the URL itself
// (replaced by its redacted form), its password in plain and percent-encoded
// form, and anything that looks like a password in URL or key=value syntax.
func redactURLText(msg, raw string) string {
	if raw != "" && strings.Contains(msg, raw) {
		msg = strings.ReplaceAll(msg, raw, redactedURL(raw))
	}
	for _, pw := range passwords(raw) {
		if len(pw) >= minBarePassword {
			msg = strings.ReplaceAll(msg, pw, "xxxxx")
		}
	}
	msg = userinfoRE.ReplaceAllString(msg, "${1}xxxxx@")
	return passwordParamRE.ReplaceAllString(msg, "${1}xxxxx")
}

// passwords returns the forms a URL's password may take in a message.
func passwords(raw string) []string {
	var out []string
	add := func(s string) {
		if s != "" {
			out = append(out, s)
		}
	}
	if u, err := url.Parse(raw); err == nil {
		if pw, ok := u.User.Password(); ok {
			add(pw)
			add(url.PathEscape(pw))
			add(url.QueryEscape(pw))
		}
		add(u.Query().Get("password"))
	}
	// An unparseable URL: take what sits between "user:" and "@".
	if m := userinfoRE.FindStringSubmatchIndex(raw); m != nil {
		add(raw[m[3] : m[1]-1])
	}
	return out
}
