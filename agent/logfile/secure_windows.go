package logfile

// noFollow: Windows' CreateFile does not follow symbolic links unless the
// process has the privilege to create them; the log directory is in the
// user's own %LOCALAPPDATA%, whose ACL admits only the user.
const noFollow = 0

// checkDir is a no-op on Windows (see noFollow).
func checkDir(string) error { return nil }
