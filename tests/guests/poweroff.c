/* poweroff: CRASH("Power down"): the launcher prints "lguest: CRASH: Power down", exits 0. */
#include "lguest.h"

int main(void)
{
	lguest_power_off();
}
