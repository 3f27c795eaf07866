// Command postgres is the PostgreSQL connector plugin: it syncs one
// PostgreSQL table (read incrementally on an updated-at column, written by
// batched upserts on the key). The host launches it; run by hand it only
// explains that it is a plugin.
package main

import (
	_ "embed"

	"github.com/synchron-io/synchron/plugins/postgres/pgconnector"
	"github.com/synchron-io/synchron/sdk"
)

//go:embed VERSION
var version string

//go:embed docs.md
var docs string

func main() {
	logger := sdk.NewLogger(pgconnector.Name)
	sdk.Serve(pgconnector.New(version, docs, pgconnector.WithLogger(logger)), sdk.WithLogger(logger))
}
