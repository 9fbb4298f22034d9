/* switcher_touch (spec 6): reading an address in the Host's top 4 MB: killed
 * "attempt to access switcher pages". */
#include "lguest.h"

int main(void)
{
	(void)*(volatile uint32_t *)(SWITCHER_ADDR + 0x100);
	panic("FAIL switcher_touch: read the switcher's pages");
}
