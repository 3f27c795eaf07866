// Command sage is the Sage Business Cloud Accounting connector plugin. The
// host launches it; run by hand it only explains that it is a plugin.
package main

import (
	_ "embed"

	"github.com/synchron-io/synchron/plugins/sage/sage"
	"github.com/synchron-io/synchron/sdk"
)

//go:embed VERSION
var version string

//go:embed docs.md
var docs string

func main() {
	sdk.Serve(sage.New(version, docs, sage.Options{}))
}
