package pgconnector

import (
	"bytes"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lib/pq"
	"github.com/lib/pq/pqerror"
)

func TestSplitTable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, schema, name string
		bad              bool
	}{
		{in: "users", name: "users"},
		{in: "app.users", schema: "app", name: "users"},
		{in: "Users", name: "Users"},
		{in: `"my.schema"."My ""Table"""`, schema: "my.schema", name: `My "Table"`},
		{in: `app."a.b"`, schema: "app", name: "a.b"},
		{in: `"x"`, name: "x"},
		{in: "a.b.c", bad: true},
		{in: "a.", bad: true},
		{in: ".a", bad: true},
		{in: `"open`, bad: true},
		{in: `"a"b`, bad: true},
		{in: `""`, bad: true},
	}
	for _, tt := range tests {
		schema, name, err := splitTable(tt.in)
		if (err != nil) != tt.bad || schema != tt.schema || name != tt.name {
			t.Errorf("splitTable(%q) = %q, %q, %v; want %q, %q, error %v", tt.in, schema, name, err, tt.schema, tt.name, tt.bad)
		}
	}
}

func TestRedact(t *testing.T) {
	t.Parallel()
	raw := "postgres://bob:p%40ss-w0rd@db.example.com:5432/app?sslmode=require"
	msgs := []string{
		"failed: " + raw,
		"password p@ss-w0rd rejected",
		"escaped p%40ss-w0rd here",
		`parse "postgres://bob:p@ss-w0rd@db:x/app": invalid port`,
		"dsn host=db password=p@ss-w0rd user=bob",
	}
	for _, m := range msgs {
		got := redactURLText(m, raw)
		if strings.Contains(got, "ss-w0rd") {
			t.Errorf("redactURLText(%q) = %q: password left", m, got)
		}
	}
	if got := redactURLText("failed: "+raw, raw); !strings.Contains(got, "bob:xxxxx@db.example.com:5432/app") {
		t.Errorf("redacted URL lost its useful parts: %q", got)
	}
	// A short password is replaced only where it sits in URL syntax.
	short := "postgres://u:ab@h/d"
	if got := redactURLText("tab ab: postgres://u:ab@h/d", short); got != "tab ab: postgres://u:xxxxx@h/d" {
		t.Errorf("short password: %q", got)
	}
	if got := redactedURL("postgres://u@h/d?password=secret1&sslmode=disable"); strings.Contains(got, "secret1") {
		t.Errorf("password parameter left: %q", got)
	}
	if got := redactedURL("postgres://u:pw@h:bad/d"); got != "<invalid url>" {
		t.Errorf("invalid URL: %q", got)
	}
}

func TestGoCanonical(t *testing.T) {
	t.Parallel()
	i4 := column{baseOID: oidInt4}
	i2 := column{baseOID: oidInt2}
	u := column{baseOID: oidUUID}
	num := column{baseOID: oidNumeric}
	tests := []struct {
		c      column
		in     string
		out    string
		goCan  bool
		reason string
	}{
		{i4, "007", "7", true, "leading zeros"},
		{i4, "+5", "5", true, "plus sign"},
		{i4, "-0", "0", true, "negative zero"},
		{i4, "2147483648", "", false, "out of range: PostgreSQL reports it"},
		{i2, "40000", "", false, "out of int2 range"},
		{i4, " 5", "", false, "spaces: PostgreSQL decides"},
		{i4, "1e3", "", false, "exponent"},
		{u, "0E3C1D52-8B6F-4A55-9F7A-3E1A2B4C5D6E", "0e3c1d52-8b6f-4a55-9f7a-3e1a2b4c5d6e", true, "upper case"},
		{u, "{0e3c1d52-8b6f-4a55-9f7a-3e1a2b4c5d6e}", "", false, "braces: PostgreSQL decides"},
		{u, "0e3c1d52-8b6f-4a55-9f7a-3e1a2b4c5dXe", "", false, "not hex"},
		{column{baseOID: oidText}, " A b ", " A b ", true, "text is itself"},
		{num, "1.50", "", false, "numeric: PostgreSQL decides"},
	}
	for _, tt := range tests {
		out, ok := goCanonical(tt.c, tt.in)
		if out != tt.out || ok != tt.goCan {
			t.Errorf("%s: goCanonical(%q) = %q, %v; want %q, %v", tt.reason, tt.in, out, ok, tt.out, tt.goCan)
		}
	}
}

func TestWithField(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		`{"a":1}`:     `{"id":"7","a":1}`,
		` { } `:       `{"id":"7"}`,
		"{\n\"a\":1}": `{"id":"7","a":1}`,
	} {
		got := withField([]byte(in), "id", []byte(`"7"`))
		if string(got) != want || !json.Valid(got) {
			t.Errorf("withField(%q) = %s, want %s", in, got, want)
		}
	}
}

// scanObjectSeeds are the cases TestScanObject checks and FuzzScanObject
// starts from.
var scanObjectSeeds = []string{
	`{}`, ` {"a": 1} `, `{"a":1,"b":[1,2,{"c":null}],"d":"x\"y","e":true,"f":false,"g":-0.5e+3}`,
	`{"\u0041b": "\ud83d\ude00", "a\\b": {}}`, `{"a":1}{"b":2}`, `{"a":1},{"b":2}`, `[1]`, `"x"`, ``, `{`,
	`{"a"}`, `{"a":}`, `{"a":1,}`, `{"a":01}`, `{"a":1.}`, `{"a":.5}`, `{"a":-}`, `{"a":1e}`, `{"a":tru}`,
	`{"a":"x` + "\n" + `"}`, `{"a":"\x"}`, `{"a":"\u12"}`, `{"a":[1,]}`, `{"a":[1 2]}`, `{a:1}`, `{"a":1} x`,
	`{"a":NaN}`, `{"a":"` + "\x01" + `"}`, `{"a":[[[[]]]]}`, `{"a" : { "b" : [ ] } }`,
}

func TestScanObject(t *testing.T) {
	t.Parallel()
	for _, in := range scanObjectSeeds {
		checkScanObject(t, []byte(in))
	}
	members, err := scanObject([]byte(`{"id": 7, "n\u0061me": "x", "id": "8", "o": {"id": 1}}`), func(b []byte) string { return "k:" + string(b) })
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range members {
		names = append(names, m.name+"="+string(m.value))
	}
	// Unescaped names go through intern, escaped ones are decoded.
	if want := []string{"k:id=7", `name="x"`, `k:id="8"`, `k:o={"id": 1}`}; !slices.Equal(names, want) {
		t.Fatalf("members %q, want %q", names, want)
	}
	deep := strings.Repeat("[", maxJSONDepth+1) + strings.Repeat("]", maxJSONDepth+1)
	if _, err := scanObject([]byte(`{"a":`+deep+`}`), nil); err == nil {
		t.Fatal("no error for JSON nested too deeply")
	}
}

// checkScanObject checks scanObject against encoding/json on one input:
// accepted exactly when it is one valid JSON object, with the same members.
func checkScanObject(t *testing.T, in []byte) {
	members, err := scanObject(in, nil)
	var want map[string]json.RawMessage
	wantOK := json.Valid(in) && bytes.HasPrefix(bytes.TrimSpace(in), []byte("{")) && json.Unmarshal(in, &want) == nil
	if wantOK && bytes.Count(in, []byte("[")) > maxJSONDepth {
		return // deeper than scanObject accepts
	}
	if (err == nil) != wantOK {
		t.Fatalf("scanObject(%q): error %v, want valid %v", in, err, wantOK)
	}
	if err != nil {
		return
	}
	got := map[string]string{}
	for _, m := range members {
		got[m.name] = string(m.value)
	}
	if len(got) != len(want) {
		t.Fatalf("scanObject(%q): %d members, want %d", in, len(got), len(want))
	}
	for k, v := range want {
		if got[k] != string(v) {
			t.Fatalf("scanObject(%q): member %q = %s, want %s", in, k, got[k], v)
		}
	}
}

func FuzzScanObject(f *testing.F) {
	for _, s := range scanObjectSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(checkScanObject)
}

func TestClassify(t *testing.T) {
	t.Parallel()
	pqErr := func(code string) error {
		return fmt.Errorf("postgres: write: %w", &pq.Error{Code: pqerror.Code(code), Message: "m"})
	}
	tests := []struct {
		name  string
		err   error
		kind  errorKind
		after time.Duration
	}{
		{"invalid text", pqErr("22P02"), kindData, 0},
		{"not null", pqErr("23502"), kindData, 0},
		{"unique", pqErr("23505"), kindData, 0},
		{"check", pqErr("23514"), kindData, 0},
		{"foreign key", pqErr("23503"), kindData, 0},
		{"trigger exception", pqErr("P0001"), kindData, 0},
		{"row-level security", pqErr("42501"), kindData, 0},
		{"serialization failure", pqErr("40001"), kindRetry, retryConflict},
		{"deadlock", pqErr("40P01"), kindRetry, retryConflict},
		{"lock timeout", pqErr("55P03"), kindRetry, retryConflict},
		{"too many connections", pqErr("53300"), kindRetry, retryOverloaded},
		{"admin shutdown", pqErr("57P01"), kindRetry, retryOverloaded},
		{"cannot connect now", pqErr("57P03"), kindRetry, retryOverloaded},
		{"statement timeout", pqErr("57014"), kindRetry, retryConnection},
		{"connection failure", pqErr("08006"), kindRetry, retryConnection},
		{"bad password", pqErr("28P01"), kindRetry, retryConfiguration},
		{"table dropped", pqErr("42P01"), kindRetry, retryConnection},
		{"column dropped", pqErr("42703"), kindRetry, retryConnection},
		{"broken connection", fmt.Errorf("query: %w", driver.ErrBadConn), kindRetry, retryConnection},
		{"eof", io.ErrUnexpectedEOF, kindRetry, retryConnection},
		{"network", &net.OpError{Op: "dial", Err: errors.New("refused")}, kindRetry, retryConnection},
	}
	for _, tt := range tests {
		kind, after := classify(tt.err)
		if kind != tt.kind || after != tt.after {
			t.Errorf("%s: classify = %v, %v; want %v, %v", tt.name, kind, after, tt.kind, tt.after)
		}
	}
}
