package webhook

import (
	"github.com/wildrydes/rydes/internal/registry"
	"github.com/wildrydes/rydes/internal/store"
)

// What the app wires in satisfies the package's interfaces.
var (
	_ Providers = (*registry.Registry)(nil)
	_ Failures  = (store.Store)(nil)
)
