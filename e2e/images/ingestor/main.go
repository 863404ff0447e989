// Command ingestor stands in for the ingestor jobs-manager launches: it prints, as one JSON
// line, the image and digest it was started with and exits 0.
package main

import (
	"encoding/json"
	"os"
)

func main() {
	_ = json.NewEncoder(os.Stdout).Encode(map[string]string{
		"msg":    "ingesting",
		"image":  os.Getenv("INGESTOR_IMAGE"),
		"digest": os.Getenv("INGESTOR_DIGEST"),
	})
}
