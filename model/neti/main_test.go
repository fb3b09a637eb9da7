package neti

import (
	"testing"

	"github.com/neti-project/neti/internal/testdev"
	"github.com/neti-project/neti/vk"
)

func TestMain(m *testing.M) { testdev.Main(m) }

func device(t *testing.T) *vk.Device { return testdev.Optional(t) }
