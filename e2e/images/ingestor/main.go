// Command ingestor stands in for the ingestor jobs-manager launches: it prints, as one JSON
// line, the image and digest it was started with and exits 0 — or 1 when the image's config
// sets E2E_CRASH=1 (a broken build).
package main

import (
	"encoding/json"
	"os"
)

func main() {
	crash := os.Getenv("E2E_CRASH") == "1"
	msg := "ingesting"
	if crash {
		msg = "this build crashes (E2E_CRASH=1)"
	}
	_ = json.NewEncoder(os.Stdout).Encode(map[string]string{
		"msg":    msg,
		"image":  os.Getenv("INGESTOR_IMAGE"),
		"digest": os.Getenv("INGESTOR_DIGEST"),
	})
	if crash {
		os.Exit(1)
	}
}
