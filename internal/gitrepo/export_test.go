package gitrepo

// ForgetIDs empties the process's table of known ids.
func ForgetIDs() {
	knownBlobs.forget()
	knownTrees.forget()
}
