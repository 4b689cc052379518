// CNCF distribution's registry command (registry.RootCmd) with the filesystem
// and in-memory storage drivers and htpasswd auth only: cmd/registry also
// registers the Azure, GCS and S3 drivers and the CloudFront middleware, which
// the tests never use and which are most of its modules and build time.
package main

import (
	"github.com/distribution/distribution/v3/registry"
	_ "github.com/distribution/distribution/v3/registry/auth/htpasswd"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
)

func main() {
	// RootCmd exits non-zero itself when serve or garbage-collect fails.
	_ = registry.RootCmd.Execute()
}
