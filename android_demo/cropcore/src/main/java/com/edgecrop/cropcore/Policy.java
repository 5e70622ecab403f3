package com.edgecrop.cropcore;

/** How a crop is placed, as edgecrop.search.Policy: max-sum, Twitter's peak-centred rule, or the centre. */
public enum Policy {
    SALIENCY("saliency"),
    TWITTER("twitter"),
    CENTRE("centre");

    public final String value;

    Policy(String value) {
        this.value = value;
    }

    /** The card's or caller's spelling ("center" is accepted for CENTRE). */
    public static Policy parse(String text) {
        if (text.equals("center")) return CENTRE;
        for (Policy p : values()) if (p.value.equals(text)) return p;
        throw new IllegalArgumentException("unknown policy " + text);
    }
}
