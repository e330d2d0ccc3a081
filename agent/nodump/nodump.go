// Package nodump keeps the agent's memory out of core dumps.
//
// The agent zeroes PIN buffers after use, but a dump taken in the middle of
// an operation (a crash, or a signal sent by another process of the user)
// would hold one, in a file the user, a crash reporter or a backup may
// keep. Disable has one signature per OS:
//   - Linux: prctl(PR_SET_DUMPABLE, 0), which also stops other processes
//     of the same user from attaching a debugger or reading /proc/PID/mem,
//     and RLIMIT_CORE 0.
//   - macOS: RLIMIT_CORE 0.
//   - Windows and others: nothing (Windows Error Reporting's dumps are set
//     by policy; see docs/security.md).
package nodump
