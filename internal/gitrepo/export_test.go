package gitrepo

// ForgetIDs empties the process's table of known ids.
func ForgetIDs() {
	known.mu.Lock()
	defer known.mu.Unlock()
	clear(known.blobs)
	clear(known.trees)
}
