package deep

import "testing"

func TestDeep(t *testing.T) {
	t.Run("with space", func(t *testing.T) {})
}
