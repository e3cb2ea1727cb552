/* startup.c: reset handler and vector table for the measurement images (ppgedge).
 * The vector table sits at the start of the code region (address 0, or the secure alias on
 * mps2-an505) because QEMU's M-profile boards load the initial SP and PC from there. The reset
 * handler copies .data, zeroes .bss, enables the FPU (CPACR CP10/CP11 full access; hard-float
 * code faults without it), runs the C++ constructors and calls main. */
#include <stdint.h>
#include <stdlib.h>

extern uint32_t __data_load__, __data_start__, __data_end__, __bss_start__, __bss_end__;
extern uint32_t __stack_top__;
extern void __libc_init_array(void);
extern int main(void);
#ifdef PPGEDGE_SEMIHOSTING
extern void initialise_monitor_handles(void);
#endif

void Reset_Handler(void);
/* -nostartfiles drops crti/crtn; newlib's __libc_init_array still calls these. */
void _init(void) {}
void _fini(void) {}
static void Fault_Handler(void);

__attribute__((section(".vectors"), used)) void (*const ppgedge_vectors[16])(void) = {
    (void (*)(void))(&__stack_top__),
    Reset_Handler,
    Fault_Handler, /* NMI */
    Fault_Handler, /* HardFault */
    Fault_Handler, /* MemManage */
    Fault_Handler, /* BusFault */
    Fault_Handler, /* UsageFault */
    Fault_Handler, /* SecureFault (v8-M) */
    0, 0, 0,
    Fault_Handler, /* SVCall */
    Fault_Handler, /* DebugMonitor */
    0,
    Fault_Handler, /* PendSV */
    Fault_Handler, /* SysTick */
};

static void Fault_Handler(void)
{
#ifdef PPGEDGE_SEMIHOSTING
    exit(70); /* a fault ends the emulation with a distinct code instead of hanging */
#else
    for (;;) {
    }
#endif
}

void Reset_Handler(void)
{
    uint32_t *src = &__data_load__;
    uint32_t *dst;
    for (dst = &__data_start__; dst < &__data_end__;) {
        *dst++ = *src++;
    }
    for (dst = &__bss_start__; dst < &__bss_end__;) {
        *dst++ = 0u;
    }
#if defined(__ARM_FP)
    *(volatile uint32_t *)0xE000ED88u |= (0xFu << 20); /* CPACR: CP10, CP11 full access */
    __asm volatile("dsb\n\tisb" ::: "memory");
#endif
#ifdef PPGEDGE_SEMIHOSTING
    initialise_monitor_handles();
#endif
    __libc_init_array();
    exit(main());
}
