// Package client moves releases between a release directory, an OCI
// image layout and any OCI registry, on oras-go: pack-and-push in one
// step, skipping blobs the registry has, parallel layer transfer, pulls
// that verify every digest, resume an interrupted layer with HTTP Range
// and select layers by role or path, and inspection of a release and its
// referrers.
//
// Credentials come from the Docker config file and its credential
// helpers, as oras and crane read them. Registries on the loopback
// interface are spoken to over plain HTTP; others over HTTPS unless
// Options.PlainHTTP says otherwise.
package client
