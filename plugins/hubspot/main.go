// Command hubspot is the HubSpot CRM connector plugin (contacts, companies,
// deals). The host launches it; run by hand it only explains that it is a
// plugin.
package main

import (
	_ "embed"

	"github.com/synchron-io/synchron/plugins/hubspot/hubspot"
	"github.com/synchron-io/synchron/sdk"
)

//go:embed VERSION
var version string

//go:embed docs.md
var docs string

func main() {
	sdk.Serve(hubspot.New(version, docs))
}
