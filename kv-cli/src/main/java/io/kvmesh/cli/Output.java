package io.kvmesh.cli;

import com.google.gson.JsonObject;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.MessageOrBuilder;
import com.google.protobuf.Timestamp;
import com.google.protobuf.util.JsonFormat;

import java.io.PrintWriter;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;

/** Renders results: aligned tables for people, one JSON document a line for scripts (same field names as the REST API). */
public final class Output {
    private static final JsonFormat.Printer JSON = JsonFormat.printer().omittingInsignificantWhitespace();
    /** Values longer than this are cut in tables (the full value is in --json and `get`). */
    static final int TABLE_VALUE_WIDTH = 48;

    private Output() {
    }

    /** The message as one line of JSON (int64 as strings, lowerCamelCase names, as over HTTP). */
    public static String json(MessageOrBuilder message) {
        try {
            return JSON.print(message);
        } catch (InvalidProtocolBufferException e) {
            throw new IllegalStateException(e);
        }
    }

    /** RFC 3339 time, or "-" when unset. */
    public static String time(boolean present, Timestamp t) {
        if (!present || (t.getSeconds() == 0 && t.getNanos() == 0)) {
            return "-";
        }
        return Instant.ofEpochSecond(t.getSeconds(), t.getNanos()).toString();
    }

    /** A value fit for one table cell: control characters escaped, cut at {@code width} with an ellipsis. */
    public static String cell(String value, int width) {
        StringBuilder b = new StringBuilder();
        for (int i = 0; i < value.length(); i++) {
            char c = value.charAt(i);
            switch (c) {
                case '\n' -> b.append("\\n");
                case '\r' -> b.append("\\r");
                case '\t' -> b.append("\\t");
                default -> b.append(c < 0x20 ? '?' : c);
            }
        }
        if (width > 1 && b.length() > width) {
            b.setLength(width - 1);
            b.append('…');
        }
        return b.toString();
    }

    /** Rows of fields printed as a table with a header, columns aligned, two spaces apart. */
    public static final class Table {
        private final List<String[]> rows = new ArrayList<>();
        private final boolean header;

        private Table(boolean header, String... columns) {
            this.header = header;
            if (header) {
                rows.add(columns);
            }
        }

        /** A table whose first row names the columns. */
        public static Table of(String... columns) {
            return new Table(true, columns);
        }

        /** A two-column field/value table (one record shown vertically). */
        public static Table fields() {
            return new Table(false);
        }

        public Table row(String... cells) {
            rows.add(cells);
            return this;
        }

        public int size() {
            return header ? rows.size() - 1 : rows.size();
        }

        public void print(PrintWriter out) {
            int cols = rows.stream().mapToInt(r -> r.length).max().orElse(0);
            int[] width = new int[cols];
            for (String[] r : rows) {
                for (int i = 0; i < r.length; i++) {
                    width[i] = Math.max(width[i], r[i].codePointCount(0, r[i].length()));
                }
            }
            for (String[] r : rows) {
                StringBuilder b = new StringBuilder();
                for (int i = 0; i < r.length; i++) {
                    b.append(r[i]);
                    if (i < r.length - 1) {
                        b.append(" ".repeat(width[i] - r[i].codePointCount(0, r[i].length()) + 2));
                    }
                }
                out.println(b.toString().stripTrailing());
            }
            out.flush();
        }
    }

    /** An error as the REST API shows it: {"code":"NOT_FOUND","message":"..."} . */
    public static String errorJson(String code, String message) {
        JsonObject o = new JsonObject();
        o.addProperty("code", code);
        o.addProperty("message", message);
        return o.toString();
    }
}
