package main
import (
 _ "github.com/nats-io/nats-server/v2/server"
 _ "github.com/nats-io/nats.go/jetstream"
 _ "modernc.org/sqlite"
 _ "github.com/getkin/kin-openapi/openapi3filter"
 _ "github.com/stretchr/testify/require"
 _ "golang.org/x/text/currency"
 _ "github.com/jonboulle/clockwork"
 _ "github.com/google/uuid"
)
func main(){}
