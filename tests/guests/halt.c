/* halt: HALT for ever with every irq masked and no timer (spec 11 row 45): only a BREAK or a
 * signal ends the launcher's read, and the guest is still halted on the next one. */
#include "lguest.h"

int main(void)
{
	lguest_data.blocked_interrupts = 0xFFFFFFFF;
	for (;;)
		lguest_halt();
}
