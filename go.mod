module github.com/neti-project/neti

go 1.26.0

require (
	github.com/go-gl/glfw/v3.3/glfw v0.0.0-20260823155953-d41da22a9587
	github.com/spf13/pflag v1.1.0
	github.com/vmihailenco/msgpack/v5 v5.4.1
	golang.org/x/image v0.44.0
	golang.org/x/text v0.44.0
	gonum.org/v1/gonum v0.17.0
)

require github.com/vmihailenco/tagparser/v2 v2.0.0 // indirect
