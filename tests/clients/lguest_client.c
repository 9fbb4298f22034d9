/* lguest_client: a launcher's side of the node, one request per line, for tests.
 *
 * Built by the tests with "gcc -m32" (4-byte words) and without (8-byte words).  It reads
 * commands on stdin and answers each with one line on stdout, "ok ..." or "err ERRNO":
 *
 *   open PATH            ok FD           open(PATH, O_RDWR)
 *   close FD             ok 0
 *   write FD WORD...     ok N            write the words as native unsigned longs
 *   raw FD HEX           ok N            write these bytes
 *   read FD SIZE         ok N HEX        read at most SIZE bytes
 *   memfd PAGES          ok BASE         a shared memfd mapping (guest memory)
 *   mapfd FD PAGES       ok BASE         map an inherited descriptor shared
 *   private PAGES        ok BASE         a private anonymous mapping (adopted from 4-byte words)
 *   privmap FD PAGES     ok BASE         map an inherited descriptor private (as lguest.c does)
 *   catch SIGNAL         ok 0            handle SIGNAL (a number) without SA_RESTART
 *   ignore SIGNAL        ok 0            set SIGNAL to SIG_IGN
 *   block SIGNAL         ok 0            add SIGNAL to the blocked mask
 *   threadopen PATH      ok FD           open(PATH, O_RDWR) in a thread that then exits
 *   forkread FD SIZE     ok PID          a forked child reads FD, then exits with 0 or the errno
 *   forkwrite MS FD WORD...  ok PID      a forked child sleeps MS ms, writes the words on FD,
 *                                        then exits with 0 or the errno (2.6.24's Waker)
 *   wait PID             ok CODE SIGNAL  waitpid: exit code (-1 if killed) and killing signal
 *   pid                  ok PID TID
 *
 * Words and sizes are C numbers (decimal, or hex with 0x).  A signal that was caught answers
 * nothing itself: the interrupted read or write answers "err 4" (EINTR), as a C launcher sees it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <fcntl.h>

#define MAX_WORDS 16
#define MAX_BYTES 65536

static unsigned char buffer[MAX_BYTES];

static void answer_errno(void)
{
	printf("err %d\n", errno);
}

static void answer_map(void *base)
{
	if (base == MAP_FAILED)
		answer_errno();
	else
		printf("ok %#lx\n", (unsigned long)base);
}

static void on_signal(int signum)
{
	(void)signum;
}

static void *open_in_thread(void *path)
{
	return (void *)(long)open(path, O_RDWR);
}

static int hex_to_bytes(const char *hex, unsigned char *out)
{
	int n = 0;
	unsigned int byte;

	while (hex[0] && hex[1] && n < MAX_BYTES && sscanf(hex, "%2x", &byte) == 1) {
		out[n++] = (unsigned char)byte;
		hex += 2;
	}
	return n;
}

static void command(char *line)
{
	char *verb = strtok(line, " \n");
	char *arg = strtok(NULL, " \n");
	long ret;

	if (!verb)
		return;
	if (!strcmp(verb, "open")) {
		ret = open(arg, O_RDWR);
		ret < 0 ? answer_errno() : (void)printf("ok %ld\n", ret);
	} else if (!strcmp(verb, "close")) {
		ret = close((int)strtol(arg, NULL, 0));
		ret < 0 ? answer_errno() : (void)printf("ok 0\n");
	} else if (!strcmp(verb, "write")) {
		unsigned long words[MAX_WORDS];
		int fd = (int)strtol(arg, NULL, 0), n = 0;
		char *word;

		while (n < MAX_WORDS && (word = strtok(NULL, " \n")))
			words[n++] = strtoul(word, NULL, 0);
		ret = write(fd, words, n * sizeof(words[0]));
		ret < 0 ? answer_errno() : (void)printf("ok %ld\n", ret);
	} else if (!strcmp(verb, "raw")) {
		int fd = (int)strtol(arg, NULL, 0);
		char *hex = strtok(NULL, " \n");
		int n = hex ? hex_to_bytes(hex, buffer) : 0;

		ret = write(fd, buffer, n);
		ret < 0 ? answer_errno() : (void)printf("ok %ld\n", ret);
	} else if (!strcmp(verb, "read")) {
		int fd = (int)strtol(arg, NULL, 0);
		size_t size = strtoul(strtok(NULL, " \n"), NULL, 0);

		ret = read(fd, buffer, size < MAX_BYTES ? size : MAX_BYTES);
		if (ret < 0) {
			answer_errno();
		} else {
			printf("ok %ld ", ret);
			for (long i = 0; i < ret; i++)
				printf("%02x", buffer[i]);
			printf("\n");
		}
	} else if (!strcmp(verb, "memfd")) {
		size_t size = strtoul(arg, NULL, 0) * 4096;
		int fd = memfd_create("guest", 0);

		if (fd < 0 || ftruncate(fd, size) < 0)
			answer_errno();
		else
			answer_map(mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
	} else if (!strcmp(verb, "mapfd")) {
		int fd = (int)strtol(arg, NULL, 0);
		size_t size = strtoul(strtok(NULL, " \n"), NULL, 0) * 4096;

		answer_map(mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
	} else if (!strcmp(verb, "private")) {
		size_t size = strtoul(arg, NULL, 0) * 4096;

		answer_map(mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
	} else if (!strcmp(verb, "privmap")) {
		int fd = (int)strtol(arg, NULL, 0);
		size_t size = strtoul(strtok(NULL, " \n"), NULL, 0) * 4096;

		answer_map(mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0));
	} else if (!strcmp(verb, "catch")) {
		struct sigaction action = { .sa_handler = on_signal };

		ret = sigaction((int)strtol(arg, NULL, 0), &action, NULL);
		ret < 0 ? answer_errno() : (void)printf("ok 0\n");
	} else if (!strcmp(verb, "ignore")) {
		ret = signal((int)strtol(arg, NULL, 0), SIG_IGN) == SIG_ERR ? -1 : 0;
		ret < 0 ? answer_errno() : (void)printf("ok 0\n");
	} else if (!strcmp(verb, "block")) {
		sigset_t set;

		sigemptyset(&set);
		sigaddset(&set, (int)strtol(arg, NULL, 0));
		ret = sigprocmask(SIG_BLOCK, &set, NULL);
		ret < 0 ? answer_errno() : (void)printf("ok 0\n");
	} else if (!strcmp(verb, "threadopen")) {
		pthread_t thread;
		void *fd;

		errno = pthread_create(&thread, NULL, open_in_thread, arg);
		if (errno || (errno = pthread_join(thread, &fd)))
			answer_errno();
		else
			(long)fd < 0 ? answer_errno() : (void)printf("ok %ld\n", (long)fd);
	} else if (!strcmp(verb, "forkread")) {
		int fd = (int)strtol(arg, NULL, 0);
		size_t size = strtoul(strtok(NULL, " \n"), NULL, 0);
		pid_t child = fork();

		if (child == 0)
			_exit(read(fd, buffer, size < MAX_BYTES ? size : MAX_BYTES) < 0 ? errno : 0);
		child < 0 ? answer_errno() : (void)printf("ok %d\n", child);
	} else if (!strcmp(verb, "forkwrite")) {
		unsigned long words[MAX_WORDS];
		long ms = strtol(arg, NULL, 0);
		int fd = (int)strtol(strtok(NULL, " \n"), NULL, 0), n = 0;
		char *word;
		pid_t child;

		while (n < MAX_WORDS && (word = strtok(NULL, " \n")))
			words[n++] = strtoul(word, NULL, 0);
		child = fork();
		if (child == 0) {
			usleep(ms * 1000);
			_exit(write(fd, words, n * sizeof(words[0])) < 0 ? errno : 0);
		}
		child < 0 ? answer_errno() : (void)printf("ok %d\n", child);
	} else if (!strcmp(verb, "wait")) {
		int status;

		ret = waitpid((pid_t)strtol(arg, NULL, 0), &status, 0);
		if (ret < 0)
			answer_errno();
		else
			printf("ok %d %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1,
			       WIFSIGNALED(status) ? WTERMSIG(status) : 0);
	} else if (!strcmp(verb, "pid")) {
		printf("ok %d %ld\n", getpid(), (long)syscall(SYS_gettid));
	} else {
		printf("err %d\n", EINVAL);
	}
}

int main(void)
{
	static char line[2 * MAX_BYTES + 64];

	while (fgets(line, sizeof(line), stdin)) {
		command(line);
		fflush(stdout);
	}
	return 0;
}
