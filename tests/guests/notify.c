/* notify: early console "hello\n", then NOTIFY of a fixed address (0x4001000: the console input
 * queue of a 64 MB launcher, spec 11 row 18), then HALT for ever (interrupts masked). */
#include "lguest.h"

int main(void)
{
	early_puts("hello\n");
	lguest_notify(0x4001000);
	for (;;)
		lguest_halt();
}
