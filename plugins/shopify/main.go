// Command shopify is the Shopify connector plugin (GraphQL Admin API). The
// host launches it; run by hand it only explains that it is a plugin.
package main

import (
	_ "embed"

	"github.com/synchron-io/synchron/plugins/shopify/shopify"
	"github.com/synchron-io/synchron/sdk"
)

//go:embed VERSION
var version string

//go:embed docs.md
var docs string

func main() {
	sdk.Serve(shopify.New(version, docs, shopify.Options{}))
}
