// Package auth authenticates and authorises requests to Airlock's embedded
// registry: users from an htpasswd file (bcrypt only), bearer tokens issued
// by the registry's own token endpoint (the Docker registry token flow that
// docker, oras, crane, regctl and skopeo follow), anonymous pull when
// allowed, and rules that grant actions (pull, push, tag, delete) on
// repository patterns to users.
//
// It is middleware in front of registry/server, so the API handlers never
// see an unauthorised request, and it puts the caller's name in the request
// context for the audit log.
package auth
