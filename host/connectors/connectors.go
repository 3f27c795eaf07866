// Package connectors owns the connector runtime of the host: the catalog of
// installed connector versions found in the plugin directory, the pool of
// connector processes (one per connector version, shared by all runs), and
// the supervisor that restarts crashed processes.
package connectors

import (
	"context"
	"errors"

	"github.com/synchron-io/synchron/sdk"
)

// ErrUnknownApp is returned for a connector name the catalog does not hold.
var ErrUnknownApp = errors.New("unknown app")

// App is one installed connector as the rest of the host sees it: its active
// version and that version's Spec.
type App struct {
	Name    string   `json:"name"`
	Version string   `json:"version"`
	Spec    sdk.Spec `json:"spec"`
}

// Lease is a connector handle pinned to one version for the life of a run.
// Release must be called when the caller is done; the process behind a lease
// is not stopped while the lease is held (hot upgrade waits for it).
//
// The process is shared by every lease on its version: with a Manager, Stop
// through a lease does nothing, and calls after Release fail with
// ErrLeaseReleased. If the process dies, calls fail with an error for which
// sdk.IsTransportError is true; Release the lease and Acquire a new one (it
// gets a restarted process).
type Lease struct {
	sdk.Connector
	Name    string
	Version string
	release func()
}

// NewLease builds a Lease; release may be nil.
func NewLease(c sdk.Connector, name, version string, release func()) *Lease {
	return &Lease{Connector: c, Name: name, Version: version, release: release}
}

// Release gives the lease back. It is safe to call more than once.
func (l *Lease) Release() {
	if l.release != nil {
		l.release()
		l.release = nil
	}
}

// Registry is what the API and the engine need from the connector runtime.
type Registry interface {
	// Apps lists the installed connectors with their active version.
	Apps(ctx context.Context) ([]App, error)
	// App returns one connector by name, or ErrUnknownApp.
	App(ctx context.Context, name string) (App, error)
	// Acquire returns a lease on the active version of the named connector,
	// starting its process if needed, or ErrUnknownApp.
	Acquire(ctx context.Context, name string) (*Lease, error)
}
