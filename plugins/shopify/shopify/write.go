package shopify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/synchron-io/synchron/sdk"
)

// Mutation cost (Shopify charges 10 points per mutation) and the cost of the
// email lookup (a connection of one node).
const (
	mutationCost = 10
	lookupCost   = 3
)

type userError struct {
	Field   []string `json:"field"`
	Message string   `json:"message"`
}

// Write applies customers (create or update, upserting by email when no id
// is given) and orders (note and tags), one mutation per record.
func (c *Connector) Write(ctx context.Context, req sdk.WriteRequest) (*sdk.WriteResponse, error) {
	cfg, diags := parseConfig(req.Config)
	resp := &sdk.WriteResponse{Results: make([]sdk.WriteResult, len(req.Records))}
	if diags.HasError() {
		resp.Diagnostics = diags
		for i, r := range req.Records {
			resp.Results[i] = sdk.WriteResult{Ref: r.Ref, Status: sdk.WriteRejected, Message: "invalid config: " + diags.Error()}
		}
		return resp, nil
	}
	for i, r := range req.Records {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var res sdk.WriteResult
		var err error
		switch req.Object {
		case "customers":
			res, err = c.writeCustomer(ctx, cfg, r)
		case "orders":
			res, err = c.writeOrder(ctx, cfg, r)
		default:
			res = sdk.WriteResult{Status: sdk.WriteRejected, Message: "object " + req.Object + " is not writable"}
		}
		if err != nil {
			res = failed(cfg, err)
			if errors.Is(err, errUnauthorized) || errors.Is(err, errNotFound) {
				if !resp.Diagnostics.HasError() {
					resp.Diagnostics = append(resp.Diagnostics, callDiagnostic(cfg, err))
				}
			}
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
		}
		res.Ref = r.Ref
		resp.Results[i] = res
	}
	return resp, nil
}

// failed maps a call error to a record's result.
func failed(cfg Config, err error) sdk.WriteResult {
	var qe *queryError
	var re *retryableError
	switch {
	case errors.As(err, &qe):
		return sdk.WriteResult{Status: sdk.WriteRejected, Message: qe.Error()}
	case errors.As(err, &re):
		return sdk.WriteResult{Status: sdk.WriteRetryable, RetryAfter: re.after, Message: re.Error()}
	}
	return sdk.WriteResult{Status: sdk.WriteRetryable, Message: callDiagnostic(cfg, err).Summary + ": " + err.Error()}
}

func rejected(format string, args ...any) sdk.WriteResult {
	return sdk.WriteResult{Status: sdk.WriteRejected, Message: fmt.Sprintf(format, args...)}
}

func emailTaken(errs []userError) bool {
	for _, e := range errs {
		if strings.Contains(strings.ToLower(e.Message), "taken") && len(e.Field) > 0 && e.Field[len(e.Field)-1] == "email" {
			return true
		}
	}
	return false
}

func userErrorsMessage(errs []userError) string {
	parts := make([]string, len(errs))
	for i, e := range errs {
		parts[i] = e.Message
		if len(e.Field) > 0 {
			parts[i] = strings.Join(e.Field, ".") + ": " + e.Message
		}
	}
	return strings.Join(parts, "; ")
}

type customerFieldsIn struct {
	Email     *string   `json:"email"`
	FirstName *string   `json:"first_name"`
	LastName  *string   `json:"last_name"`
	Phone     *string   `json:"phone"`
	Note      *string   `json:"note"`
	Tags      *[]string `json:"tags"`
	// Read-only fields a host may echo back; ignored.
	ID        any `json:"id"`
	CreatedAt any `json:"created_at"`
	UpdatedAt any `json:"updated_at"`
}

func (c *Connector) writeCustomer(ctx context.Context, cfg Config, r sdk.WriteRecord) (sdk.WriteResult, error) {
	if r.Delete {
		return rejected("deleting customers is not supported"), nil
	}
	var in customerFieldsIn
	dec := json.NewDecoder(strings.NewReader(string(r.Fields)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return rejected("invalid customer fields: %v", err), nil
	}
	input := map[string]any{}
	set := func(k string, v *string) {
		if v != nil {
			input[k] = *v
		}
	}
	set("email", in.Email)
	set("firstName", in.FirstName)
	set("lastName", in.LastName)
	set("phone", in.Phone)
	set("note", in.Note)
	if in.Tags != nil {
		input["tags"] = *in.Tags
	}
	id := r.ID
	if id == "" && in.Email != nil && *in.Email != "" {
		found, err := c.customerByEmail(ctx, cfg, *in.Email)
		if err != nil {
			return sdk.WriteResult{}, err
		}
		id = found
	}
	mutation, action := "customerCreate", sdk.ActionCreated
	if id != "" {
		mutation, action = "customerUpdate", sdk.ActionUpdated
		input["id"] = id
	}
	doc := fmt.Sprintf(`mutation Write($input: CustomerInput!) { %s(input: $input) { customer { %s } userErrors { field message } } }`, mutation, customerFields)
	var out map[string]struct {
		Customer   json.RawMessage `json:"customer"`
		UserErrors []userError     `json:"userErrors"`
	}
	if err := c.call(ctx, cfg, doc, map[string]any{"input": input}, mutationCost, &out); err != nil {
		return sdk.WriteResult{}, fmt.Errorf("%s: %w", mutation, err)
	}
	p := out[mutation]
	if mutation == "customerCreate" && emailTaken(p.UserErrors) {
		// The customer appeared since the lookup (or an earlier attempt
		// whose answer was lost created it): update it instead.
		found, err := c.customerByEmail(ctx, cfg, *in.Email)
		if err != nil {
			return sdk.WriteResult{}, err
		}
		if found != "" {
			r.ID = found
			res, err := c.writeCustomer(ctx, cfg, r)
			if err == nil && res.Status == sdk.WriteOK {
				res.Action = sdk.ActionCreated
			}
			return res, err
		}
	}
	if len(p.UserErrors) > 0 {
		return rejected("%s", userErrorsMessage(p.UserErrors)), nil
	}
	fields, err := convertCustomer(p.Customer)
	if err != nil {
		return sdk.WriteResult{}, err
	}
	raw, _ := json.Marshal(fields)
	return sdk.WriteResult{Status: sdk.WriteOK, Action: action, ID: fmt.Sprint(fields["id"]), Fields: raw}, nil
}

// customerByEmail returns the id of the customer with that email, or "".
func (c *Connector) customerByEmail(ctx context.Context, cfg Config, email string) (string, error) {
	q := "email:'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(email) + "'"
	var out struct {
		Customers struct {
			Nodes []struct {
				ID    string `json:"id"`
				Email string `json:"email"`
			} `json:"nodes"`
		} `json:"customers"`
	}
	if err := c.call(ctx, cfg, `query Lookup($query: String!) { customers(first: 1, query: $query) { nodes { id email } } }`, map[string]any{"query": q}, lookupCost, &out); err != nil {
		return "", fmt.Errorf("look up customer by email: %w", err)
	}
	for _, n := range out.Customers.Nodes {
		if strings.EqualFold(n.Email, email) {
			return n.ID, nil
		}
	}
	return "", nil
}

func (c *Connector) writeOrder(ctx context.Context, cfg Config, r sdk.WriteRecord) (sdk.WriteResult, error) {
	if r.Delete {
		return rejected("deleting orders is not supported"), nil
	}
	if r.ID == "" {
		return rejected("orders cannot be created: give the order's id to update its note or tags"), nil
	}
	var in map[string]json.RawMessage
	if err := json.Unmarshal(r.Fields, &in); err != nil {
		return rejected("invalid order fields: %v", err), nil
	}
	input := map[string]any{"id": r.ID}
	for k, v := range in {
		switch k {
		case "note":
			var s *string
			if err := json.Unmarshal(v, &s); err != nil {
				return rejected("note: %v", err), nil
			}
			input["note"] = s
		case "tags":
			var t []string
			if err := json.Unmarshal(v, &t); err != nil {
				return rejected("tags: %v", err), nil
			}
			input["tags"] = t
		case "id", "name", "email", "total_price", "currency", "financial_status", "line_items", "created_at", "updated_at":
			// read only
		default:
			return rejected("unknown order field %q", k), nil
		}
	}
	doc := `mutation Write($input: OrderInput!) { orderUpdate(input: $input) { order { ` + orderFields + ` } userErrors { field message } } }`
	var out struct {
		OrderUpdate struct {
			Order      json.RawMessage `json:"order"`
			UserErrors []userError     `json:"userErrors"`
		} `json:"orderUpdate"`
	}
	if err := c.call(ctx, cfg, doc, map[string]any{"input": input}, mutationCost, &out); err != nil {
		return sdk.WriteResult{}, fmt.Errorf("orderUpdate: %w", err)
	}
	if len(out.OrderUpdate.UserErrors) > 0 {
		return rejected("%s", userErrorsMessage(out.OrderUpdate.UserErrors)), nil
	}
	fields, err := convertOrder(out.OrderUpdate.Order)
	if err != nil {
		return sdk.WriteResult{}, err
	}
	raw, _ := json.Marshal(fields)
	return sdk.WriteResult{Status: sdk.WriteOK, Action: sdk.ActionUpdated, ID: r.ID, Fields: raw}, nil
}
