// Package server is Airlock's embedded OCI registry: the HTTP API of the
// OCI distribution-spec v1.1
// (https://github.com/opencontainers/distribution-spec/blob/v1.1.1/spec.md)
// over a store.Blobs and a store.Meta. It owns routing, protocol checks
// (names, references, digests, manifests, upload ranges), the error
// envelope, tag protection at push time, the access log and the request
// metrics. Authentication sits in front of it (registry/auth); bytes and
// records live behind it (registry/store).
package server
