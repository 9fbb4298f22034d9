/*
 * ctty TTY PROGRAM [ARGS...]: run PROGRAM in a new session whose controlling terminal is TTY.
 *
 * The kernel starts /init on /dev/console, which can never be a controlling terminal, so a
 * shell there has no job control and Ctrl-C cannot reach its commands.  /init runs the shell
 * through this tool on /dev/hvc0 (the same virtio console, as a real tty): setsid, open the
 * terminal (the first open by a session leader makes it the controlling terminal; TIOCSCTTY
 * makes sure), make it fds 0-2, exec.
 */
#include "tool.h"

int main(int argc, char **argv, char **envp)
{
	if (argc < 3) {
		complain("ctty", "usage: ctty TTY PROGRAM [ARGS...]");
		return 2;
	}
	sys_setsid();
	long fd = sys_open(argv[1], O_RDWR);
	if (fd < 0) {
		complain("ctty", "cannot open the terminal");
		return 1;
	}
	sys_ioctl((int)fd, TIOCSCTTY, 1);
	for (int i = 0; i < 3; i++)
		sys_dup2((int)fd, i);
	if (fd > 2)
		sys_close((int)fd);
	sys_execve(argv[2], argv + 2, envp);
	complain("ctty", "cannot run the program");
	return 127;
}
