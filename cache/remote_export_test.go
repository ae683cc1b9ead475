package cache

import "time"

// SetRemoteGrace lets the remote tests of package cache_test collect
// remote objects younger than DefaultRemoteGrace.
func SetRemoteGrace(s *Store, d time.Duration) { s.remote.grace = d }
