package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/synchron-io/synchron/host/store"
)

// apiError is an error answered to the client as
// {"error": {"code": ..., "message": ...}} with Status.
type apiError struct {
	Status  int
	Code    string
	Message string
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message) }

func errorf(status int, code, format string, args ...any) *apiError {
	return &apiError{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// invalid is a 422: the request is well formed but asks for something that
// cannot be.
func invalid(code, format string, args ...any) *apiError {
	return errorf(http.StatusUnprocessableEntity, code, format, args...)
}

func notFound(kind, id string) *apiError {
	return errorf(http.StatusNotFound, "not_found", "%s %q not found", kind, id)
}

type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func writeError(c *gin.Context, e *apiError) {
	c.AbortWithStatusJSON(e.Status, errorBody{Error: errorDetail{Code: e.Code, Message: e.Message}})
}

// h adapts a handler that returns an error: an *apiError is answered as is;
// any other error is logged and answered as a 500 without its text.
func (s *server) h(fn func(c *gin.Context) error) gin.HandlerFunc {
	return func(c *gin.Context) {
		err := fn(c)
		if err == nil {
			return
		}
		var ae *apiError
		if errors.As(err, &ae) {
			writeError(c, ae)
			return
		}
		s.log.Error("request failed",
			"method", c.Request.Method, "route", c.FullPath(), "request_id", requestID(c), "error", err)
		writeError(c, internalError(c))
	}
}

func internalError(c *gin.Context) *apiError {
	return errorf(http.StatusInternalServerError, "internal", "internal error; if it persists, contact support with request id %s", requestID(c))
}

// decodeJSON reads the body into dst, refusing unknown fields and trailing
// data, with messages that say what to fix.
func decodeJSON(c *gin.Context, dst any) error {
	body, err := io.ReadAll(c.Request.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return errorf(http.StatusRequestEntityTooLarge, "request_too_large", "request body is larger than %d bytes", MaxBodyBytes)
		}
		return errorf(http.StatusBadRequest, "bad_request", "could not read the request body")
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return errorf(http.StatusBadRequest, "malformed_json", "request body is empty: send a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(dst); err != nil {
		return jsonError(err)
	}
	if dec.More() {
		return errorf(http.StatusBadRequest, "malformed_json", "request body has data after the JSON object")
	}
	if hasNUL(body) {
		return invalid("invalid_text", "text in the request cannot contain the NUL character (\\u0000)")
	}
	return nil
}

// hasNUL reports whether a string of valid JSON (a key or a value) holds
// U+0000, which PostgreSQL refuses in text and jsonb.
func hasNUL(body []byte) bool {
	if !bytes.Contains(body, []byte(`\u0000`)) {
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	for {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		if s, ok := tok.(string); ok && strings.ContainsRune(s, 0) {
			return true
		}
	}
}

func jsonError(err error) *apiError {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return errorf(http.StatusBadRequest, "malformed_json", "request body is not valid JSON: %s (at byte %d)", syn.Error(), syn.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errorf(http.StatusBadRequest, "malformed_json", "request body is not valid JSON: it ends too early")
	case errors.As(err, &typ):
		if typ.Field == "" {
			return errorf(http.StatusBadRequest, "malformed_json", "request body must be a JSON object, not %s", typ.Value)
		}
		return errorf(http.StatusBadRequest, "malformed_json", "field %q must be %s, not %s", typ.Field, jsonKind(typ.Type.Kind().String()), typ.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return errorf(http.StatusBadRequest, "unknown_field", "%s: remove it (see GET /v1/openapi.json)", strings.TrimPrefix(err.Error(), "json: "))
	}
	return errorf(http.StatusBadRequest, "malformed_json", "request body is not valid JSON")
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "int", "int64", "int32", "float64":
		return "a number"
	case "struct", "map":
		return "an object"
	case "slice":
		return "an array"
	}
	return "another type"
}

// listOptions reads ?limit= and ?cursor=.
func listOptions(c *gin.Context) (store.ListOptions, error) {
	opts := store.ListOptions{Limit: store.DefaultLimit, Cursor: c.Query("cursor")}
	if raw, ok := c.GetQuery("limit"); ok {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 || n > store.MaxLimit {
			return opts, errorf(http.StatusBadRequest, "invalid_limit", "limit must be an integer from 1 to %d", store.MaxLimit)
		}
		opts.Limit = n
	}
	return opts, nil
}

// listError maps a store list error: a cursor we did not issue is the
// client's mistake.
func listError(err error) error {
	if errors.Is(err, store.ErrBadCursor) {
		return errorf(http.StatusBadRequest, "invalid_cursor", "cursor is not valid: pass the next_cursor of the previous page unchanged")
	}
	return err
}

// listBody is the shape of every list answer.
type listBody[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor"`
}

func list[T any](items []T, next string) listBody[T] {
	if items == nil {
		items = []T{}
	}
	return listBody[T]{Items: items, NextCursor: next}
}
