package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"
)

const connectorsUsage = `usage: synchron connectors <command>

  list                                 installed connectors, versions, state, processes
  install  <name> <version> [sha256]   record a version put in the plugin directory
  activate <name> <version>            new runs use it; runs in flight finish on theirs
  rollback <name>                      back to the previous active version

environment:
  SYNCHRON_URL          the host's API (default http://127.0.0.1:8080)
  SYNCHRON_ADMIN_TOKEN  the operator token the host was started with (required)`

// adminClient calls a host's operator API.
type adminClient struct {
	base, token string
	http        *http.Client
	out         io.Writer
}

// runConnectors is `synchron connectors ...`.
func runConnectors(ctx context.Context, args []string, getenv func(string) string, out io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(out, connectorsUsage)
		return nil
	}
	c := adminClient{base: strings.TrimRight(getenv("SYNCHRON_URL"), "/"), token: getenv("SYNCHRON_ADMIN_TOKEN"),
		http: &http.Client{Timeout: time.Minute}, out: out}
	if c.base == "" {
		c.base = "http://127.0.0.1:8080"
	}
	if c.token == "" {
		return errors.New("SYNCHRON_ADMIN_TOKEN is required: the operator token the host was started with")
	}
	need := func(n int) error {
		if len(args) < n+1 {
			return fmt.Errorf("connectors %s needs %d argument(s)\n%s", args[0], n, connectorsUsage)
		}
		return nil
	}
	switch args[0] {
	case "list":
		var body struct {
			Items []adminConnector `json:"items"`
		}
		if err := c.call(ctx, http.MethodGet, "/admin/connectors", nil, &body); err != nil {
			return err
		}
		c.print(body.Items...)
		return nil
	case "install":
		if err := need(2); err != nil {
			return err
		}
		req := map[string]string{"version": args[2]}
		if len(args) > 3 {
			req["sha256"] = args[3]
		}
		return c.one(ctx, "/admin/connectors/"+args[1]+"/versions", req)
	case "activate":
		if err := need(2); err != nil {
			return err
		}
		return c.one(ctx, "/admin/connectors/"+args[1]+"/activate", map[string]string{"version": args[2]})
	case "rollback":
		if err := need(1); err != nil {
			return err
		}
		return c.one(ctx, "/admin/connectors/"+args[1]+"/rollback", nil)
	}
	return fmt.Errorf("unknown connectors command %q\n%s", args[0], connectorsUsage)
}

type adminConnector struct {
	Name          string `json:"name"`
	ActiveVersion string `json:"active_version"`
	Versions      []struct {
		Version   string `json:"version"`
		SHA256    string `json:"sha256"`
		Active    bool   `json:"active"`
		State     string `json:"state"`
		PID       int    `json:"pid"`
		Leases    int    `json:"leases"`
		Crashes   int    `json:"crashes"`
		LastError string `json:"last_error"`
	} `json:"versions"`
}

func (c adminClient) one(ctx context.Context, path string, req any) error {
	var v adminConnector
	if err := c.call(ctx, http.MethodPost, path, req, &v); err != nil {
		return err
	}
	c.print(v)
	return nil
}

func (c adminClient) print(items ...adminConnector) {
	w := tabwriter.NewWriter(c.out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(w, "CONNECTOR\tVERSION\tACTIVE\tSTATE\tPID\tLEASES\tCRASHES\tSHA256\tLAST ERROR")
	for _, it := range items {
		for _, v := range it.Versions {
			active := ""
			if v.Active {
				active = "*"
			}
			sum := v.SHA256
			if len(sum) > 12 {
				sum = sum[:12]
			}
			pid := "-"
			if v.PID > 0 {
				pid = fmt.Sprint(v.PID)
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\n", it.Name, v.Version, active, v.State, pid, v.Leases, v.Crashes, sum, v.LastError)
		}
	}
	w.Flush()
}

// call sends one request and decodes the answer, or returns the API's error
// message.
func (c adminClient) call(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return fmt.Errorf("request %s: %w", path, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, c.base+path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if json.Unmarshal(raw, &e) == nil && e.Error.Message != "" {
			return fmt.Errorf("%s (HTTP %d %s)", e.Error.Message, resp.StatusCode, e.Error.Code)
		}
		return fmt.Errorf("%s %s: HTTP %d", method, path, resp.StatusCode)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return nil
}
