// Command demo serves the Shopify, HubSpot and Sage fakes on local ports
// (127.0.0.1 only), seeds them with sample data and prints their URLs and
// credentials as KEY=VALUE lines followed by "ready"; it runs until
// interrupted. scripts/demo.sh uses it to show the flagship workflow
// without real accounts.
//
//	go run ./scripts/demo [-shopify 127.0.0.1:0] [-hubspot 127.0.0.1:0] [-sage 127.0.0.1:0]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	hubfake "github.com/synchron-io/synchron/plugins/hubspot/fake"
	sagefake "github.com/synchron-io/synchron/plugins/sage/fake"
	shopfake "github.com/synchron-io/synchron/plugins/shopify/fake"
)

// Credentials the fakes accept.
const (
	ShopifyToken = "shpat_demo"
	HubSpotToken = "pat-demo"
	SageBusiness = "biz-1"
	SageClientID = "demo-client"
	SageSecret   = "demo-secret"
)

// Addrs are the listen addresses of the fakes (port 0 picks a free one).
type Addrs struct {
	Shopify, HubSpot, Sage string
}

// Demo is the three running fakes.
type Demo struct {
	Shopify *shopfake.Server
	HubSpot *hubfake.Server
	Sage    *sagefake.Server

	ShopifyURL, HubSpotURL, SageURL string
	// SageAccess, SageRefresh and SageExpires are the tokens of the Sage
	// connection (the connector refreshes them through SageURL/token).
	SageAccess, SageRefresh string
	SageExpires             time.Time

	servers []*http.Server
	errs    chan error
}

// loopback refuses listen addresses other than 127.0.0.1 / ::1 / localhost:
// the fakes accept fixed credentials and must not be reachable from outside.
func loopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("listen address %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("listen address %q: the demo fakes listen on loopback only (127.0.0.1)", addr)
	}
	return nil
}

// Start serves the three fakes. Close stops them.
func Start(a Addrs) (*Demo, error) {
	sage, err := sagefake.New(sagefake.Options{Businesses: []string{SageBusiness}, ClientID: SageClientID, ClientSecret: SageSecret})
	if err != nil {
		return nil, fmt.Errorf("sage fake: %w", err)
	}
	d := &Demo{
		Shopify: shopfake.New(shopfake.Options{Token: ShopifyToken}),
		HubSpot: hubfake.NewHandler(hubfake.Options{Tokens: []string{HubSpotToken}}),
		Sage:    sage,
		errs:    make(chan error, 3),
	}
	d.SageAccess, d.SageRefresh, d.SageExpires = sage.IssueTokens()
	for _, s := range []struct {
		name, addr string
		h          http.Handler
		url        *string
	}{
		{"shopify", a.Shopify, d.Shopify, &d.ShopifyURL},
		{"hubspot", a.HubSpot, d.HubSpot.Handler, &d.HubSpotURL},
		{"sage", a.Sage, d.Sage, &d.SageURL},
	} {
		if err := loopback(s.addr); err != nil {
			d.Close(context.Background()) //nolint:errcheck // already failing
			return nil, fmt.Errorf("%s: %w", s.name, err)
		}
		ln, err := net.Listen("tcp", s.addr)
		if err != nil {
			d.Close(context.Background()) //nolint:errcheck // already failing
			return nil, fmt.Errorf("%s: listen on %s: %w", s.name, s.addr, err)
		}
		srv := &http.Server{Handler: s.h, ReadHeaderTimeout: 10 * time.Second}
		d.servers = append(d.servers, srv)
		*s.url = "http://" + ln.Addr().String()
		go func(name string) {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				d.errs <- fmt.Errorf("%s fake: %w", name, err)
			}
		}(s.name)
	}
	return d, nil
}

// Err reports a server that stopped on its own.
func (d *Demo) Err() <-chan error { return d.errs }

// Close stops the servers.
func (d *Demo) Close(ctx context.Context) error {
	var errs []error
	for _, s := range d.servers {
		if err := s.Shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Sample names and products (functions, not package variables: nothing
// global is mutable).
func firstNames() []string {
	return []string{"Ada", "Ben", "Chloe", "Dan", "Eva", "Finn", "Grace", "Hugo", "Iris", "Jack",
		"Kara", "Liam", "Mia", "Noah", "Olga", "Paul", "Quinn", "Rosa", "Sam", "Tara",
		"Uma", "Vic", "Wendy", "Xavi", "Yara", "Zoe", "Alan", "Bea", "Carl", "Dora"}
}

func lastNames() []string {
	return []string{"Adams", "Brown", "Clark", "Davis", "Evans", "Fox", "Green", "Hill", "Irwin", "Jones"}
}

func productNames() []string {
	return []string{"Espresso beans 1kg", "Filter papers", "Ceramic mug", "Travel cup", "Hand grinder",
		"Milk jug", "Kettle", "Scale", "Tamper", "Cleaning tablets", "Gift card", "Tote bag"}
}

// Shared customers appear in Shopify and HubSpot (HubSpot's email in
// upper case: matching is by trimmed lower-case email).
const (
	nShopify = 30 // customers 0..29 in Shopify
	nShared  = 10 // customers 20..29 also in HubSpot
	nHubOnly = 15 // contacts 30..44 only in HubSpot
)

func person(i int) (first, last, email, phone string) {
	fn, ln := firstNames(), lastNames()
	first, last = fn[i%len(fn)], ln[i%len(ln)]
	email = fmt.Sprintf("%s.%s%d@example.com", strings.ToLower(first), strings.ToLower(last), i)
	phone = fmt.Sprintf("+1415555%04d", 100+i)
	return first, last, email, phone
}

// Seed fills each fake with the sample data once: an app that already holds
// it (its first record) is left as it is, so seeding twice changes nothing.
func (d *Demo) Seed() {
	products := productNames()
	if len(d.Shopify.Customers()) == 0 {
		for i := range nShopify {
			first, last, email, phone := person(i)
			d.Shopify.AddCustomer(shopfake.Customer{Email: email, FirstName: first, LastName: last, Phone: phone, Tags: []string{"demo"}})
		}
		for i, p := range products {
			d.Shopify.AddProduct(shopfake.Product{Title: p, Handle: fmt.Sprintf("demo-product-%d", i), Vendor: "Demo Roasters", ProductType: "Coffee", Status: "ACTIVE"})
		}
		for i := range 8 {
			first, last, email, _ := person(i)
			lines := []shopfake.LineItem{{Name: products[i%len(products)], Quantity: 1 + i%3, Price: "10.00"}}
			if i%2 == 1 {
				lines = append(lines, shopfake.LineItem{Name: products[(i+5)%len(products)], Quantity: 1, Price: "12.50"})
			}
			note := ""
			if i == 0 {
				note = "Gift wrap, please" // the write-back leaves it alone
			}
			d.Shopify.AddOrder(shopfake.Order{Email: email, CustomerName: first + " " + last, Note: note, Currency: "USD", Status: "PAID",
				Total: fmt.Sprintf("%d.00", 20+i*5), LineItems: lines})
		}
	}
	if d.HubSpot.Count("contacts") == 0 {
		var contacts []map[string]string
		for i := nShopify - nShared; i < nShopify+nHubOnly; i++ {
			first, last, email, phone := person(i)
			if i < nShopify {
				email = strings.ToUpper(email[:1]) + email[1:]
			}
			contacts = append(contacts, map[string]string{"email": email, "firstname": first, "lastname": last, "phone": phone})
		}
		d.HubSpot.Seed("contacts", contacts...)
	}
	if d.Sage.Get(SageBusiness, "contacts", "contact-000001") == nil {
		for i := range 5 {
			first, last, email, _ := person(i)
			d.Sage.Put(SageBusiness, "contacts", map[string]any{"name": first + " " + last, "reference": fmt.Sprintf("DEMO-%03d", i),
				"email": email, "contact_types": []any{map[string]any{"id": "CUSTOMER"}}})
		}
		for i, p := range products {
			d.Sage.Put(SageBusiness, "products", map[string]any{"item_code": fmt.Sprintf("DEMO-%02d", i), "description": p,
				"sales_ledger_account": map[string]any{"id": "la-sales"}, "purchase_ledger_account": map[string]any{"id": "la-purchases"}})
		}
	}
}

// Print writes the URLs and credentials as KEY=VALUE lines.
func (d *Demo) Print(w io.Writer) error {
	_, err := fmt.Fprintf(w, `SHOPIFY_URL=%s
SHOPIFY_TOKEN=%s
HUBSPOT_URL=%s
HUBSPOT_TOKEN=%s
SAGE_URL=%s
SAGE_BUSINESS=%s
SAGE_CLIENT_ID=%s
SAGE_CLIENT_SECRET=%s
SAGE_ACCESS_TOKEN=%s
SAGE_REFRESH_TOKEN=%s
SAGE_EXPIRES_AT=%s
`, d.ShopifyURL, ShopifyToken, d.HubSpotURL, HubSpotToken, d.SageURL, SageBusiness, SageClientID, SageSecret,
		d.SageAccess, d.SageRefresh, d.SageExpires.UTC().Format(time.RFC3339))
	if err != nil {
		return fmt.Errorf("print: %w", err)
	}
	return nil
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	var a Addrs
	fs.StringVar(&a.Shopify, "shopify", "127.0.0.1:0", "listen address of the Shopify fake")
	fs.StringVar(&a.HubSpot, "hubspot", "127.0.0.1:0", "listen address of the HubSpot fake")
	fs.StringVar(&a.Sage, "sage", "127.0.0.1:0", "listen address of the Sage fake")
	if err := fs.Parse(args); err != nil {
		return err
	}
	d, err := Start(a)
	if err != nil {
		return err
	}
	d.Seed()
	if err := d.Print(stdout); err != nil {
		d.Close(context.Background()) //nolint:errcheck // already failing
		return err
	}
	if _, err := fmt.Fprintln(stdout, "ready"); err != nil {
		d.Close(context.Background()) //nolint:errcheck // already failing
		return fmt.Errorf("print: %w", err)
	}
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-d.Err():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return errors.Join(serveErr, d.Close(sctx))
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}
