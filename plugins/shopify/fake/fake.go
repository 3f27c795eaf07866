// Package fake is an in-memory Shopify GraphQL Admin API for tests: customers,
// orders and products with cursor paging and updated_at filters, the
// customerCreate/customerUpdate/orderUpdate mutations with userErrors,
// cost-based throttling with a leaky bucket, injectable faults and a
// configurable clock. When a schema is loaded (LoadSchema) every query is
// validated against it, and an invalid query is answered with GraphQL errors
// as Shopify does.
package fake

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/parser"
	"github.com/vektah/gqlparser/v2/validator"
)

// Options configure a Server. Zero values take the defaults.
type Options struct {
	// Token is the accepted X-Shopify-Access-Token (default "test-token").
	Token string
	// MaximumAvailable and RestoreRate size the cost bucket (default 1000 and 50).
	MaximumAvailable float64
	RestoreRate      float64
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Schemas validate queries by API version; a version missing from a
	// non-nil map is answered 404. nil disables validation.
	Schemas map[string]*ast.Schema
	// Versions served when Schemas is nil (default DefaultVersions); other
	// versions are answered 404.
	Versions []string
}

// DefaultVersions are the API versions served without schemas.
func DefaultVersions() []string { return []string{"2024-10", "2025-01"} }

// MaxQueryCost is Shopify's limit on the cost of one query.
const MaxQueryCost = 1000

// Fault is an injected failure for one request.
type Fault struct {
	// Status answers this HTTP status (e.g. 503) instead of the query.
	Status int
	// Throttle answers a THROTTLED error whatever the bucket holds.
	Throttle bool
	// AfterApply runs the query (mutations take effect) and then answers
	// Status: the lost answer of a request that succeeded.
	AfterApply bool
}

// Server is the fake API. It is an http.Handler.
type Server struct {
	opts Options

	mu        sync.Mutex
	avail     float64
	at        time.Time
	faults    []Fault
	queries   []string
	throttled int
	nextID    int
	customers []*Customer
	orders    []*Order
	products  []*Product
}

// Customer is a stored customer.
type Customer struct {
	ID                                      int
	Email, FirstName, LastName, Phone, Note string
	Tags                                    []string
	CreatedAt, UpdatedAt                    time.Time
}

// LineItem is a line of an order.
type LineItem struct {
	Name     string
	Quantity int
	Price    string
}

// Order is a stored order.
type Order struct {
	ID                                  int
	Name, Email, Note, Currency, Status string
	Total                               string
	Tags                                []string
	LineItems                           []LineItem
	CreatedAt, UpdatedAt                time.Time
	// CustomerName is the display name of the order's customer ("": no
	// customer).
	CustomerName string
	// Metafields by "namespace.key".
	Metafields map[string]string
}

// Product is a stored product.
type Product struct {
	ID                                         int
	Title, Handle, Vendor, ProductType, Status string
	Tags                                       []string
	CreatedAt, UpdatedAt                       time.Time
}

// New returns a server with an empty store and a full bucket.
func New(opts Options) *Server {
	if opts.Token == "" {
		opts.Token = "test-token"
	}
	if opts.MaximumAvailable <= 0 {
		opts.MaximumAvailable = 1000
	}
	if opts.RestoreRate <= 0 {
		opts.RestoreRate = 50
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Versions == nil {
		opts.Versions = DefaultVersions()
	}
	return &Server{opts: opts, avail: opts.MaximumAvailable, at: opts.Now(), nextID: 1000}
}

// Inject queues faults, each answering one upcoming request.
func (s *Server) Inject(f ...Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, f...)
}

// Queries returns every query document received, in order.
func (s *Server) Queries() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.queries...)
}

// Throttled returns how many THROTTLED answers the bucket (not an injected
// fault) gave.
func (s *Server) Throttled() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.throttled
}

func (s *Server) id() int { s.nextID++; return s.nextID }

// AddCustomer stores c (ID assigned when 0, timestamps default to now) and returns its gid.
func (s *Server) AddCustomer(c Customer) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.ID == 0 {
		c.ID = s.id()
	}
	if c.UpdatedAt.IsZero() {
		c.UpdatedAt = s.opts.Now().UTC().Truncate(time.Second)
	}
	if c.CreatedAt.IsZero() {
		c.CreatedAt = c.UpdatedAt
	}
	s.customers = append(s.customers, &c)
	return gid("Customer", c.ID)
}

// AddOrder stores o and returns its gid.
func (s *Server) AddOrder(o Order) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if o.ID == 0 {
		o.ID = s.id()
	}
	if o.UpdatedAt.IsZero() {
		o.UpdatedAt = s.opts.Now().UTC().Truncate(time.Second)
	}
	if o.CreatedAt.IsZero() {
		o.CreatedAt = o.UpdatedAt
	}
	if o.Name == "" {
		o.Name = fmt.Sprintf("#%d", o.ID)
	}
	s.orders = append(s.orders, &o)
	return gid("Order", o.ID)
}

// AddProduct stores p and returns its gid.
func (s *Server) AddProduct(p Product) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p.ID == 0 {
		p.ID = s.id()
	}
	if p.UpdatedAt.IsZero() {
		p.UpdatedAt = s.opts.Now().UTC().Truncate(time.Second)
	}
	if p.CreatedAt.IsZero() {
		p.CreatedAt = p.UpdatedAt
	}
	s.products = append(s.products, &p)
	return gid("Product", p.ID)
}

// Customers returns a copy of the stored customers.
func (s *Server) Customers() []Customer {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Customer, len(s.customers))
	for i, c := range s.customers {
		out[i] = *c
	}
	return out
}

// EditOrder changes the stored order with that numeric id as if edited in
// the shop admin: edit runs on it, then its updated_at becomes now. It
// reports whether the order exists.
func (s *Server) EditOrder(id int, edit func(*Order)) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, o := range s.orders {
		if o.ID == id {
			edit(o)
			o.UpdatedAt = s.opts.Now().UTC().Truncate(time.Second)
			return true
		}
	}
	return false
}

// Order returns a copy of the stored order with that numeric id.
func (s *Server) Order(id int) (Order, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, o := range s.orders {
		if o.ID == id {
			c := *o
			c.Metafields = maps.Clone(o.Metafields)
			return c, true
		}
	}
	return Order{}, false
}

func gid(kind string, id int) string { return fmt.Sprintf("gid://shopify/%s/%d", kind, id) }

func parseGID(kind, s string) (int, bool) {
	n, err := strconv.Atoi(strings.TrimPrefix(s, "gid://shopify/"+kind+"/"))
	return n, err == nil && strings.HasPrefix(s, "gid://shopify/"+kind+"/")
}

var pathRE = regexp.MustCompile(`^/admin/api/([0-9]{4}-[0-9]{2}|unstable)/graphql\.json$`)

type request struct {
	Query         string         `json:"query"`
	Variables     map[string]any `json:"variables"`
	OperationName string         `json:"operationName"`
}

type gqlError struct {
	Message    string         `json:"message"`
	Extensions map[string]any `json:"extensions,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// ServeHTTP answers POST /admin/api/{version}/graphql.json.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m := pathRE.FindStringSubmatch(r.URL.Path)
	if m == nil {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodPost {
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	if r.Header.Get("X-Shopify-Access-Token") != s.opts.Token {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"})
		return
	}
	var schema *ast.Schema
	if s.opts.Schemas != nil {
		schema = s.opts.Schemas[m[1]]
		if schema == nil {
			http.NotFound(w, r)
			return
		}
	} else if !slices.Contains(s.opts.Versions, m[1]) {
		http.NotFound(w, r)
		return
	}
	var req request
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"errors": "Bad Request: " + err.Error()})
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queries = append(s.queries, req.Query)
	var lost *Fault
	if len(s.faults) > 0 {
		f := s.faults[0]
		s.faults = s.faults[1:]
		if f.AfterApply {
			lost = &f
		} else if f.Status != 0 {
			writeJSON(w, f.Status, map[string]any{"errors": "Internal Server Error"})
			return
		}
		if f.Throttle {
			s.restore()
			writeJSON(w, http.StatusOK, s.throttledAnswer(1))
			return
		}
	}
	var doc *ast.QueryDocument
	if schema != nil {
		var errs gqlerror.List
		doc, errs = gqlparser.LoadQueryWithRules(schema, req.Query, nil)
		if len(errs) > 0 {
			out := make([]gqlError, len(errs))
			for i, e := range errs {
				out[i] = gqlError{Message: e.Message, Extensions: map[string]any{"code": "GRAPHQL_VALIDATION_FAILED"}}
			}
			writeJSON(w, http.StatusOK, map[string]any{"errors": out})
			return
		}
	} else {
		var err error
		doc, err = parser.ParseQuery(&ast.Source{Input: req.Query})
		if err != nil {
			writeJSON(w, http.StatusOK, map[string]any{"errors": []gqlError{{Message: err.Error()}}})
			return
		}
	}
	op := doc.Operations.ForName(req.OperationName)
	if op == nil {
		writeJSON(w, http.StatusOK, map[string]any{"errors": []gqlError{{Message: "no operation to run"}}})
		return
	}
	vars := req.Variables
	if schema != nil {
		// Variable values are checked against their types, as Shopify
		// does (an unknown input field or a wrong enum is refused).
		coerced, err := validator.VariableValues(schema, op, vars)
		if err != nil {
			writeJSON(w, http.StatusOK, map[string]any{"errors": []gqlError{{Message: err.Error(), Extensions: map[string]any{"code": "INVALID_VARIABLE"}}}})
			return
		}
		vars = coerced
	}
	cost := 0.0
	for _, f := range fields(op.SelectionSet) {
		cost += fieldCost(f, vars, op.Operation == ast.Mutation)
	}
	s.restore()
	if cost > MaxQueryCost {
		writeJSON(w, http.StatusOK, map[string]any{
			"errors": []gqlError{{
				Message:    fmt.Sprintf("Query cost is %.0f, which exceeds the single query max cost limit (%d).", cost, MaxQueryCost),
				Extensions: map[string]any{"code": "MAX_COST_EXCEEDED", "cost": cost, "maxCost": MaxQueryCost},
			}},
			"extensions": s.costExt(cost, -1),
		})
		return
	}
	if cost > s.avail {
		s.throttled++
		writeJSON(w, http.StatusOK, s.throttledAnswer(cost))
		return
	}
	s.avail -= cost
	data := map[string]any{}
	actual := 0.0
	var errs []gqlError
	for _, f := range fields(op.SelectionSet) {
		v, c, err := s.resolve(op.Operation, f, vars)
		if err != nil {
			errs = append(errs, gqlError{Message: err.Error(), Extensions: map[string]any{"code": "BAD_REQUEST"}})
			continue
		}
		actual += c
		data[key(f)] = project(v, f.SelectionSet, vars)
	}
	if actual > cost {
		actual = cost
	}
	s.avail += cost - actual
	out := map[string]any{"data": data, "extensions": s.costExt(cost, actual)}
	if len(errs) > 0 {
		out["errors"] = errs
	}
	if lost != nil {
		writeJSON(w, lost.Status, map[string]any{"errors": "Internal Server Error"})
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) restore() {
	now := s.opts.Now()
	if d := now.Sub(s.at).Seconds(); d > 0 {
		s.avail = math.Min(s.opts.MaximumAvailable, s.avail+d*s.opts.RestoreRate)
	}
	s.at = now
}

func (s *Server) costExt(requested, actual float64) map[string]any {
	c := map[string]any{
		"requestedQueryCost": requested,
		"throttleStatus": map[string]any{
			"maximumAvailable":   s.opts.MaximumAvailable,
			"currentlyAvailable": math.Floor(s.avail),
			"restoreRate":        s.opts.RestoreRate,
		},
	}
	if actual >= 0 {
		c["actualQueryCost"] = actual
	} else {
		c["actualQueryCost"] = nil
	}
	return map[string]any{"cost": c}
}

func (s *Server) throttledAnswer(cost float64) map[string]any {
	return map[string]any{
		"errors":     []gqlError{{Message: "Throttled", Extensions: map[string]any{"code": "THROTTLED", "documentation": "https://shopify.dev/api/usage/rate-limits"}}},
		"extensions": s.costExt(cost, -1),
	}
}

// fields flattens a selection set into its fields (inline fragments included).
func fields(set ast.SelectionSet) []*ast.Field {
	var out []*ast.Field
	for _, sel := range set {
		switch x := sel.(type) {
		case *ast.Field:
			out = append(out, x)
		case *ast.InlineFragment:
			out = append(out, fields(x.SelectionSet)...)
		case *ast.FragmentSpread:
			if x.Definition != nil {
				out = append(out, fields(x.Definition.SelectionSet)...)
			}
		}
	}
	return out
}

func key(f *ast.Field) string {
	if f.Alias != "" {
		return f.Alias
	}
	return f.Name
}

func args(f *ast.Field, vars map[string]any) map[string]any {
	out := map[string]any{}
	for _, a := range f.Arguments {
		v, err := a.Value.Value(vars)
		if err == nil {
			out[a.Name] = v
		}
	}
	return out
}

func intArg(a map[string]any, name string) (int, bool) {
	switch v := a[name].(type) {
	case int64:
		return int(v), true
	case float64:
		return int(v), true
	case int:
		return v, true
	case json.Number:
		n, err := v.Int64()
		return int(n), err == nil
	}
	return 0, false
}

// fieldCost follows Shopify's rules closely enough for tests: a mutation
// costs 10, an object 1, a connection 2 plus first times the cost of a node,
// scalars nothing.
func fieldCost(f *ast.Field, vars map[string]any, mutation bool) float64 {
	children := 0.0
	for _, c := range fields(f.SelectionSet) {
		children += fieldCost(c, vars, false)
	}
	if mutation {
		return 10
	}
	if len(f.SelectionSet) == 0 {
		return 0
	}
	if n, ok := intArg(args(f, vars), "first"); ok {
		// edges/nodes each cost 1 per node; count the node once.
		per := 0.0
		for _, c := range fields(f.SelectionSet) {
			if c.Name == "edges" || c.Name == "nodes" {
				per = math.Max(per, fieldCost(c, vars, false))
			}
		}
		return 2 + float64(n)*math.Max(per, 1)
	}
	if f.Name == "edges" || f.Name == "nodes" || f.Name == "node" {
		return 1 + childrenWithoutObject(f, vars)
	}
	return 1 + children
}

func childrenWithoutObject(f *ast.Field, vars map[string]any) float64 {
	c := 0.0
	for _, x := range fields(f.SelectionSet) {
		if x.Name == "node" {
			c += childrenWithoutObject(x, vars)
			continue
		}
		c += fieldCost(x, vars, false)
	}
	return c
}

// pagedNodes is a nested connection (an order's lineItems): project pages
// it with the field's first and after arguments.
type pagedNodes []any

// metafieldsKey holds an owner's metafields in its graph, for the
// metafield(namespace, key) field.
const metafieldsKey = "\x00metafields"

// project keeps the selected fields of a resolved value.
func project(v any, set ast.SelectionSet, vars map[string]any) any {
	if len(set) == 0 {
		return v
	}
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for _, f := range fields(set) {
			val := x[f.Name]
			switch nodes := val.(type) {
			case pagedNodes:
				val = page(nodes, args(f, vars))
			}
			if f.Name == "metafield" {
				val = nil
				a := args(f, vars)
				ns, _ := a["namespace"].(string)
				k, _ := a["key"].(string)
				if mf, ok := x[metafieldsKey].(map[string]string); ok {
					if value, ok := mf[ns+"."+k]; ok {
						val = map[string]any{"__typename": "Metafield", "namespace": ns, "key": k, "value": value, "type": "single_line_text_field"}
					}
				}
			}
			out[key(f)] = project(val, f.SelectionSet, vars)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = project(e, set, vars)
		}
		return out
	}
	return v
}

// page answers a nested connection: cursors are positions ("n<index>").
func page(nodes pagedNodes, a map[string]any) map[string]any {
	start := 0
	if after, _ := a["after"].(string); after != "" {
		if n, err := strconv.Atoi(strings.TrimPrefix(after, "n")); err == nil {
			start = n + 1
		}
	}
	start = min(start, len(nodes))
	first, ok := intArg(a, "first")
	if !ok {
		first = len(nodes)
	}
	end := min(len(nodes), start+first)
	edges := make([]any, 0, end-start)
	for i := start; i < end; i++ {
		edges = append(edges, map[string]any{"node": nodes[i], "cursor": "n" + strconv.Itoa(i)})
	}
	var endCursor any
	if end > start {
		endCursor = "n" + strconv.Itoa(end-1)
	}
	return map[string]any{
		"nodes": []any(nodes[start:end]), "edges": edges,
		"pageInfo": map[string]any{"hasNextPage": end < len(nodes), "hasPreviousPage": start > 0, "endCursor": endCursor},
	}
}

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func tags(t []string) []any {
	out := make([]any, len(t))
	for i, s := range t {
		out[i] = s
	}
	return out
}

func strOrNil(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func (c *Customer) graph() map[string]any {
	return map[string]any{
		"__typename": "Customer", "id": gid("Customer", c.ID), "email": strOrNil(c.Email),
		"firstName": strOrNil(c.FirstName), "lastName": strOrNil(c.LastName), "phone": strOrNil(c.Phone),
		"note": strOrNil(c.Note), "tags": tags(c.Tags), "createdAt": ts(c.CreatedAt), "updatedAt": ts(c.UpdatedAt),
		"displayName": strings.TrimSpace(c.FirstName + " " + c.LastName),
	}
}

func (o *Order) graph() map[string]any {
	lines := make([]any, len(o.LineItems))
	for i, l := range o.LineItems {
		lines[i] = map[string]any{
			"__typename": "LineItem", "id": gid("LineItem", o.ID*100+i), "name": l.Name, "title": l.Name, "quantity": l.Quantity,
			"originalUnitPriceSet": map[string]any{"shopMoney": map[string]any{"amount": l.Price, "currencyCode": o.Currency}},
		}
	}
	return map[string]any{
		"__typename": "Order", "id": gid("Order", o.ID), "name": o.Name, "email": strOrNil(o.Email),
		"note": strOrNil(o.Note), "tags": tags(o.Tags), "currencyCode": o.Currency,
		"displayFinancialStatus": strOrNil(o.Status), "createdAt": ts(o.CreatedAt), "updatedAt": ts(o.UpdatedAt),
		"totalPriceSet": map[string]any{"shopMoney": map[string]any{"amount": o.Total, "currencyCode": o.Currency}},
		"lineItems":     pagedNodes(lines),
		"customer":      customerOf(o.CustomerName),
		metafieldsKey:   maps.Clone(o.Metafields),
	}
}

func customerOf(name string) any {
	if name == "" {
		return nil
	}
	return map[string]any{"__typename": "Customer", "displayName": name}
}

func (p *Product) graph() map[string]any {
	return map[string]any{
		"__typename": "Product", "id": gid("Product", p.ID), "title": p.Title, "handle": p.Handle,
		"vendor": p.Vendor, "productType": p.ProductType, "status": p.Status, "tags": tags(p.Tags),
		"createdAt": ts(p.CreatedAt), "updatedAt": ts(p.UpdatedAt),
	}
}

func connection(nodes []any, hasNext bool, end string) map[string]any {
	edges := make([]any, len(nodes))
	for i, n := range nodes {
		edges[i] = map[string]any{"node": n, "cursor": cursorOf(n)}
	}
	return map[string]any{
		"nodes": nodes, "edges": edges,
		"pageInfo": map[string]any{"hasNextPage": hasNext, "hasPreviousPage": false, "endCursor": strOrNil(end)},
	}
}

func cursorOf(n any) string {
	m, _ := n.(map[string]any)
	id, _ := m["id"].(string)
	up, _ := m["updatedAt"].(string)
	return base64.StdEncoding.EncodeToString([]byte(up + "|" + id))
}

// item is a record in sort order.
type item struct {
	id      int
	updated time.Time
	email   string
	graph   map[string]any
}

var (
	updatedRE = regexp.MustCompile(`updated_at:(>=|>|<=|<)'?([^' ]+)'?`)
	emailRE   = regexp.MustCompile(`email:'?([^' ]+)'?`)
	phoneRE   = regexp.MustCompile(`phone:'?([^' ]+)'?`)
)

func (s *Server) resolve(op ast.Operation, f *ast.Field, vars map[string]any) (any, float64, error) {
	a := args(f, vars)
	if op == ast.Mutation {
		v, err := s.mutate(f.Name, a)
		return v, 10, err
	}
	var items []item
	switch f.Name {
	case "shop":
		return map[string]any{"__typename": "Shop", "name": "Fake Shop", "myshopifyDomain": "fake.myshopify.com", "currencyCode": "USD"}, 1, nil
	case "customers":
		for _, c := range s.customers {
			items = append(items, item{c.ID, c.UpdatedAt, c.Email, c.graph()})
		}
	case "orders":
		for _, o := range s.orders {
			items = append(items, item{o.ID, o.UpdatedAt, o.Email, o.graph()})
		}
	case "products":
		for _, p := range s.products {
			items = append(items, item{p.ID, p.UpdatedAt, "", p.graph()})
		}
	case "order":
		id, _ := a["id"].(string)
		n, _ := parseGID("Order", id)
		for _, o := range s.orders {
			if o.ID == n {
				return o.graph(), fieldCost(f, vars, false), nil
			}
		}
		return nil, 1, nil
	default:
		return nil, 0, fmt.Errorf("field %q is not implemented by the fake", f.Name)
	}
	q, _ := a["query"].(string)
	if m := updatedRE.FindStringSubmatch(q); m != nil {
		t, err := time.Parse(time.RFC3339, m[2])
		if err != nil {
			return nil, 0, fmt.Errorf("invalid updated_at in query %q", q)
		}
		items = filter(items, func(it item) bool {
			switch m[1] {
			case ">":
				return it.updated.After(t)
			case ">=":
				return !it.updated.Before(t)
			case "<":
				return it.updated.Before(t)
			}
			return !it.updated.After(t)
		})
	}
	if m := emailRE.FindStringSubmatch(q); m != nil {
		items = filter(items, func(it item) bool { return strings.EqualFold(it.email, m[1]) })
	}
	if m := phoneRE.FindStringSubmatch(q); m != nil {
		items = filter(items, func(it item) bool { p, _ := it.graph["phone"].(string); return p == m[1] })
	}
	sortKey, _ := a["sortKey"].(string)
	sort.SliceStable(items, func(i, j int) bool {
		if sortKey == "UPDATED_AT" && !items[i].updated.Equal(items[j].updated) {
			return items[i].updated.Before(items[j].updated)
		}
		return items[i].id < items[j].id
	})
	if rev, _ := a["reverse"].(bool); rev {
		for i, j := 0, len(items)-1; i < j; i, j = i+1, j-1 {
			items[i], items[j] = items[j], items[i]
		}
	}
	if after, _ := a["after"].(string); after != "" {
		pos := -1
		for i, it := range items {
			if cursorOf(it.graph) == after {
				pos = i
			}
		}
		if pos < 0 {
			return nil, 0, fmt.Errorf("invalid cursor")
		}
		items = items[pos+1:]
	}
	first, ok := intArg(a, "first")
	if !ok {
		return nil, 0, fmt.Errorf("you must provide one of first or last")
	}
	if first > 250 {
		return nil, 0, fmt.Errorf("the maximum page size is 250")
	}
	hasNext := len(items) > first
	if hasNext {
		items = items[:first]
	}
	nodes := make([]any, len(items))
	end := ""
	for i, it := range items {
		nodes[i] = it.graph
		end = cursorOf(it.graph)
	}
	per := 1.0
	if f.Name == "orders" {
		per = math.Max(1, fieldCost(f, vars, false)-2) / math.Max(1, float64(first))
	}
	return connection(nodes, hasNext, end), 2 + float64(len(nodes))*per, nil
}

func filter(items []item, keep func(item) bool) []item {
	var out []item
	for _, it := range items {
		if keep(it) {
			out = append(out, it)
		}
	}
	return out
}

var validEmail = regexp.MustCompile(`^[^@\s]+@[^@\s]+\.[^@\s]+$`)

func userError(field, msg string) map[string]any {
	return map[string]any{"__typename": "UserError", "field": []any{field}, "message": msg}
}

func (s *Server) mutate(name string, a map[string]any) (any, error) {
	in, _ := a["input"].(map[string]any)
	if in == nil {
		return nil, fmt.Errorf("argument 'input' is required")
	}
	str := func(k string) (string, bool) { v, ok := in[k].(string); return v, ok }
	now := s.opts.Now().UTC().Truncate(time.Second)
	switch name {
	case "customerCreate", "customerUpdate":
		var c *Customer
		if name == "customerUpdate" {
			id, _ := str("id")
			n, _ := parseGID("Customer", id)
			for _, x := range s.customers {
				if x.ID == n {
					c = x
				}
			}
			if c == nil {
				return map[string]any{"customer": nil, "userErrors": []any{userError("id", "Customer does not exist")}}, nil
			}
		}
		if email, ok := str("email"); ok {
			if !validEmail.MatchString(email) {
				return map[string]any{"customer": nil, "userErrors": []any{userError("email", "Email is invalid")}}, nil
			}
			for _, x := range s.customers {
				if x != c && strings.EqualFold(x.Email, email) {
					return map[string]any{"customer": nil, "userErrors": []any{userError("email", "Email has already been taken")}}, nil
				}
			}
		} else if c == nil {
			phone, _ := str("phone")
			first, _ := str("firstName")
			last, _ := str("lastName")
			if phone == "" && first == "" && last == "" {
				return map[string]any{"customer": nil, "userErrors": []any{userError("customer", "A name, phone number, or email address must be present")}}, nil
			}
		}
		if c == nil {
			c = &Customer{ID: s.id(), CreatedAt: now}
			s.customers = append(s.customers, c)
		}
		if v, ok := str("email"); ok {
			c.Email = v
		}
		if v, ok := str("firstName"); ok {
			c.FirstName = v
		}
		if v, ok := str("lastName"); ok {
			c.LastName = v
		}
		if v, ok := str("phone"); ok {
			c.Phone = v
		}
		if v, ok := str("note"); ok {
			c.Note = v
		}
		if t, ok := in["tags"].([]any); ok {
			c.Tags = nil
			for _, x := range t {
				if s, ok := x.(string); ok {
					c.Tags = append(c.Tags, s)
				}
			}
		}
		c.UpdatedAt = now
		return map[string]any{"customer": c.graph(), "userErrors": []any{}}, nil
	case "orderUpdate":
		id, _ := str("id")
		n, _ := parseGID("Order", id)
		for _, o := range s.orders {
			if o.ID != n {
				continue
			}
			if v, ok := str("note"); ok {
				o.Note = v
			}
			if t, ok := in["tags"].([]any); ok {
				o.Tags = nil
				for _, x := range t {
					if s, ok := x.(string); ok {
						o.Tags = append(o.Tags, s)
					}
				}
			}
			if mfs, ok := in["metafields"].([]any); ok {
				for _, x := range mfs {
					mf, _ := x.(map[string]any)
					ns, _ := mf["namespace"].(string)
					k, _ := mf["key"].(string)
					v, _ := mf["value"].(string)
					if ns == "" || k == "" {
						return map[string]any{"order": nil, "userErrors": []any{userError("metafields", "Namespace and key are required")}}, nil
					}
					if o.Metafields == nil {
						o.Metafields = map[string]string{}
					}
					o.Metafields[ns+"."+k] = v
				}
			}
			o.UpdatedAt = now
			return map[string]any{"order": o.graph(), "userErrors": []any{}}, nil
		}
		return map[string]any{"order": nil, "userErrors": []any{userError("id", "Order does not exist")}}, nil
	}
	return nil, fmt.Errorf("mutation %q is not implemented by the fake", name)
}
