// Package gatewayapi is the canary actuator that moves traffic by the
// weights of a Kubernetes Gateway API HTTPRoute (DESIGN.md §7): one rule of
// the route names the baseline and the canary as two backendRefs, and the
// actuator sets their weights to 100−p and p.
//
// It speaks to the cluster through client-go's dynamic client and edits the
// route as unstructured content, so Airlock needs no Gateway API Go types
// and touches nothing in the route but the two weights and its own
// annotations (airlock.dev/…). Writes carry the resourceVersion that was
// read, so a change made by someone else between the read and the write is
// never overwritten: the actuator reads again and retries.
//
// The route must be gateway.networking.k8s.io/v1; the actuator needs get
// and update on httproutes in the route's namespace, nothing else.
//
// This package is the only importer of k8s.io/client-go outside cmd/.
package gatewayapi
