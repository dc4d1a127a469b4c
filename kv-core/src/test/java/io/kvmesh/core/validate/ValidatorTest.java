package io.kvmesh.core.validate;

import io.kvmesh.core.config.Limits;
import io.kvmesh.core.error.KvError;
import io.kvmesh.core.error.KvException;
import org.junit.jupiter.api.Test;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class ValidatorTest {
    private final Validator validator = new Validator(new Limits(8, 16, 100, 1000, 1 << 20));

    @Test
    void checkKey_rejectsEmpty() {
        assertInvalid(() -> validator.checkKey(""), "key must not be empty");
    }

    @Test
    void checkKey_rejectsLongerThanLimitInUtf8Bytes() {
        validator.checkKey("12345678");
        assertInvalid(() -> validator.checkKey("123456789"), "9 bytes; the limit is 8");
        assertInvalid(() -> validator.checkKey("ééééé"), "10 bytes");
    }

    @Test
    void checkKey_rejectsControlCharactersAndNoncharacters() {
        assertInvalid(() -> validator.checkKey("a\nb"), "control characters");
        assertInvalid(() -> validator.checkKey("a\u0000"), "control characters");
        assertInvalid(() -> validator.checkKey("a\uFFFF"), "noncharacters");
        assertInvalid(() -> validator.checkKey(new String(Character.toChars(0x10FFFF))), "noncharacters");
    }

    @Test
    void checkKey_acceptsUnicodeText() {
        validator.checkKey("chave/ü");
        validator.checkKey("😀");
    }

    @Test
    void checkValue_rejectsOversizedAndNul() {
        validator.checkValue("");
        validator.checkValue("x".repeat(16));
        assertInvalid(() -> validator.checkValue("x".repeat(17)), "17 bytes; the limit is 16");
        assertInvalid(() -> validator.checkValue("a\u0000b"), "NUL");
    }

    @Test
    void pageSize_defaultsCapsAndRejectsNegative() {
        assertThat(validator.pageSize(0)).isEqualTo(100);
        assertThat(validator.pageSize(5)).isEqualTo(5);
        assertThat(validator.pageSize(5000)).isEqualTo(1000);
        assertInvalid(() -> validator.pageSize(-1), "page_size must not be negative");
    }

    private static void assertInvalid(Runnable call, String message) {
        assertThatThrownBy(call::run).isInstanceOf(KvException.class)
                .hasMessageContaining(message)
                .satisfies(e -> assertThat(((KvException) e).error()).isEqualTo(KvError.INVALID_ARGUMENT));
    }
}
