// cosign's own command tree (cli.New), without the four cloud KMS providers
// cmd/cosign registers (AWS, Azure, GCP, Vault): the tests sign with key
// files, and those providers are most of cosign's modules and build time.
package main

import (
	"log"

	"github.com/sigstore/cosign/v2/cmd/cosign/cli"
)

func main() {
	if err := cli.New().Execute(); err != nil {
		log.Fatalf("error during command execution: %v", err)
	}
}
