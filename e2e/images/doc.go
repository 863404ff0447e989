// Package images holds the small programs the end-to-end node runs as container images, built
// by the harness with go-containerregistry: pause (the sandbox image), jobsmanager,
// podsmonitor and ingestor (stand-ins for the client chart's workloads).
package images
