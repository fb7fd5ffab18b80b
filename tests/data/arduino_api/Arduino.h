/*
 * The part of the Arduino API that firmware/boards/arduino_board.cpp and the
 * cycles_*.cpp files use, declared as the Arduino cores declare it (stm32duino,
 * ArduinoCore-mbed, arduino-esp32), so that tests/test_board_support.py can
 * check that those files compile. Declarations only: nothing here runs.
 */
#ifndef ARDUINO_H
#define ARDUINO_H

#include <stddef.h>
#include <stdint.h>

#define F_CPU 133000000L

class HardwareSerial {
public:
    void begin(unsigned long baud);
    int read(void);
    size_t write(const uint8_t *buffer, size_t size);
    void flush(void);
    operator bool();
};
extern HardwareSerial Serial;

class EspClass {
public:
    uint32_t getCycleCount(void);
    uint32_t getCpuFreqMHz(void);
};
extern EspClass ESP;

unsigned long micros(void);
void yield(void);

#endif
