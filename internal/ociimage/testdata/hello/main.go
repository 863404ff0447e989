// Command hello prints its message; the ociimage tests build it into an image.
package main

import (
	"fmt"
	"os"
)

// message is set with -ldflags "-X main.message=...".
var message = "unset"

func main() {
	fmt.Println(message, len(os.Args)-1)
}
