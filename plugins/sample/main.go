// Command sample is the sample connector plugin: deterministic fake contacts
// and orders for demos and benchmarks. The host launches it; run by hand it
// only explains that it is a plugin.
package main

import (
	_ "embed"

	"github.com/synchron-io/synchron/plugins/sample/sample"
	"github.com/synchron-io/synchron/sdk"
)

//go:embed VERSION
var version string

//go:embed docs.md
var docs string

func main() {
	sdk.Serve(sample.New(version, docs))
}
