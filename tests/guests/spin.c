/* spin: after LGUEST_INIT (done by the runtime), loop for ever without a single exit: the Host
 * must still stop it within milliseconds for a break, a signal, an irq or a close. */
#include "lguest.h"

int main(void)
{
	for (;;)
		__asm__ __volatile__("");
}
