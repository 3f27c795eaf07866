package store

import (
	"context"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jmoiron/sqlx"
)

// Page limits of list calls.
const (
	DefaultLimit = 50
	MaxLimit     = 500
)

// ListOptions selects one page of a list. Lists are newest first.
type ListOptions struct {
	// Limit is the page size; 0 means DefaultLimit, more than MaxLimit is
	// cut to MaxLimit.
	Limit int
	// Cursor is the NextCursor of the previous page ("" for the first).
	Cursor string
}

func (o ListOptions) limit() int {
	switch {
	case o.Limit <= 0:
		return DefaultLimit
	case o.Limit > MaxLimit:
		return MaxLimit
	}
	return o.Limit
}

// keyset is the position after which a page starts: the (created_at, id) of
// the last row of the previous page.
type keyset struct {
	at time.Time
	id string
}

// The cursor is opaque to clients: base64url of "<unix micros>.<id>".
func encodeCursor(at time.Time, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(at.UnixMicro(), 10) + "." + id))
}

// decodeCursor returns nil for the first page.
func decodeCursor(c string) (*keyset, error) {
	if c == "" {
		return nil, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return nil, fmt.Errorf("%w: not base64url", ErrBadCursor)
	}
	micros, id, ok := strings.Cut(string(raw), ".")
	if !ok || id == "" {
		return nil, ErrBadCursor
	}
	us, err := strconv.ParseInt(micros, 10, 64)
	if err != nil {
		return nil, ErrBadCursor
	}
	at := time.UnixMicro(us).UTC()
	// Cursors we issue hold ids and times that PostgreSQL accepts back.
	if at.Year() < 2000 || at.Year() > 9999 || len(id) > 200 || !utf8.ValidString(id) || strings.ContainsRune(id, 0) {
		return nil, ErrBadCursor
	}
	return &keyset{at: at, id: id}, nil
}

// encodeSeqCursor and decodeSeqCursor page over a bigserial id.
func encodeSeqCursor(id int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte("s" + strconv.FormatInt(id, 10)))
}

func decodeSeqCursor(c string) (int64, bool, error) {
	if c == "" {
		return 0, false, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || len(raw) < 2 || raw[0] != 's' {
		return 0, false, ErrBadCursor
	}
	id, err := strconv.ParseInt(string(raw[1:]), 10, 64)
	if err != nil {
		return 0, false, ErrBadCursor
	}
	return id, true, nil
}

// page cuts rows fetched with limit+1 to limit and computes the next cursor.
func page[T any](rows []T, limit int, key func(T) string) ([]T, string) {
	if len(rows) <= limit {
		return rows, ""
	}
	rows = rows[:limit]
	return rows, key(rows[len(rows)-1])
}

// listNewest runs a newest-first keyset page of query. The query's last
// three parameters, after args, are the cursor's time, the cursor's id (both
// NULL on the first page) and the number of rows to fetch; key gives a row's
// (time, id) for the next cursor.
func listNewest[T any](ctx context.Context, db *sqlx.DB, opts ListOptions, what string, key func(T) (time.Time, string), query string, args ...any) ([]T, string, error) {
	after, err := decodeCursor(opts.Cursor)
	if err != nil {
		return nil, "", err
	}
	var at, id any
	if after != nil {
		at, id = after.at, after.id
	}
	limit := opts.limit()
	var rows []T
	if err := db.SelectContext(ctx, &rows, query, append(args, at, id, limit+1)...); err != nil {
		return nil, "", fmt.Errorf("store: list %s: %w", what, err)
	}
	rows, next := page(rows, limit, func(r T) string { t, i := key(r); return encodeCursor(t, i) })
	return rows, next, nil
}
